"""SQL over a topic with DuckDB, scanning the stream directly."""
import duckdb

import fastsource as fs
from _sample import bootstrap, sample_topic

topic = sample_topic("examples-duckdb")
source = fs.KafkaSource(bootstrap(), topics=[topic], value_format=fs.formats.Json())
with source.open() as stream:
    print(duckdb.sql("select value.kind, count(*) as n, round(sum(value.amount), 2) as amount "
                     "from stream group by 1 order by 1").fetchall())
