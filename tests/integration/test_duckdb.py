"""DuckDB over Kafka, the two paths the docs give: DuckDB hands the filters of a query over a
`scan_kafka` LazyFrame to the scan (so a time range reads about that range), and any bounded read's
stream is a table through the Arrow stream protocol (DuckDB passes it nothing: bound the read)."""
from __future__ import annotations

import datetime as dt
import json

import duckdb
import pyarrow as pa
import pytest

import fastsource as fs
from fastsource.polars import scan_kafka

BASE_MS = 1_764_158_400_000
RECORDS = 2000


@pytest.fixture
def clicks(make_topic, producer):
    topic = make_topic(partitions=2)
    for i in range(RECORDS):
        producer.produce(topic, key=f"user-{i % 7}", value=json.dumps({"id": i, "amount": i % 10}),
                         partition=i % 2, timestamp=BASE_MS + i * 1000)
    producer.flush(30)
    return topic


def test_duckdb_passes_time_filters_to_scan_kafka(bootstrap, clicks):
    """A DuckDB query over the LazyFrame: its WHERE clause reaches the scan (as Polars expressions on
    the timestamp cast to microseconds), so only the records from the lower bound on are fetched,
    and the answer is the one DuckDB gives over a full read."""
    schema = pa.schema([("id", pa.int64()), ("amount", pa.int64())])
    reports = []
    events = scan_kafka(bootstrap, topics=[clicks], value_format=fs.formats.Json(schema=schema),
                        unnest_value=True, on_read=reports.append)
    since = dt.datetime.fromtimestamp((BASE_MS + 1500 * 1000) / 1000, dt.timezone.utc)
    query = ("select partition, count(*) as n, sum(amount) as total from {} "
             f"where \"timestamp\" >= TIMESTAMPTZ '{since.isoformat()}' group by partition order by partition")
    got = duckdb.sql(query.format("events")).fetchall()
    assert reports[-1]["records"] == RECORDS - 1500
    everything = fs.KafkaSource(bootstrap, topics=[clicks], value_format=fs.formats.Json(schema=schema)).read_all()
    flat = everything.drop_columns(["value"]).append_column("amount", everything.column("value").combine_chunks().field("amount"))
    assert got == duckdb.sql(query.format("flat")).fetchall()
    assert sum(n for _, n, _ in got) == RECORDS - 1500


def test_duckdb_reads_a_bounded_stream_through_the_arrow_stream_protocol(bootstrap, clicks):
    """A stream is a DuckDB table as it is; DuckDB pushes nothing into it, so the read's bounds are
    the source's own (here the records from a time on, via OffsetsInitializer.timestamp)."""
    source = fs.KafkaSource(bootstrap, topics=[clicks], value_format=fs.formats.String(),
                            starting_offsets=fs.OffsetsInitializer.timestamp(BASE_MS + 1900 * 1000))
    with source.open(parallelism=2) as stream:
        rows = duckdb.sql("select count(*), min(\"offset\"), max(\"offset\") from stream").fetchall()
        assert stream.metrics()["records"] == 100
    assert rows == [(100, 950, 999)]
