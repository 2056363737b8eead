"""Bounded backfill: every record of the last hour of a topic into one Parquet file."""
import time

import pyarrow.parquet as pq

import fastsource as fs
from _sample import bootstrap, sample_topic

topic = sample_topic("examples-backfill")
now_ms = int(time.time() * 1000)
source = fs.KafkaSource(
    bootstrap(), topics=[topic],
    starting_offsets=fs.OffsetsInitializer.timestamp(now_ms - 3_600_000),
    stopping_offsets=fs.OffsetsInitializer.timestamp(now_ms),
    value_format=fs.formats.String())
table = source.read_all()
pq.write_table(table, "backfill.parquet")
print(f"wrote {table.num_rows:,} rows of {topic} to backfill.parquet")
