"""A topic straight into Polars through the Arrow C stream protocol."""
import polars as pl

import fastsource as fs
from _sample import bootstrap, sample_topic

topic = sample_topic("examples-polars")
source = fs.KafkaSource(bootstrap(), topics=[topic], value_format=fs.formats.Json())
with source.open() as stream:
    df = pl.DataFrame(stream)
print(df.unnest("value").group_by("kind").agg(pl.len(), pl.col("amount").mean()).sort("kind"))
