"""The stream feeds pyarrow, Polars, DuckDB and pandas directly through the Arrow C stream protocol."""
from __future__ import annotations

import duckdb
import pyarrow as pa
import pytest

import fastsource as fs

SCHEMA = pa.schema([("n", pa.int64()), ("kind", pa.string())])


@pytest.fixture
def source(bootstrap, make_topic, producer):
    topic = make_topic(partitions=3)
    for i in range(300):
        producer.produce(topic, f'{{"n": {i}, "kind": "{"ab"[i % 2]}"}}'.encode(), partition=i % 3)
    producer.flush()
    return fs.KafkaSource(bootstrap, topics=[topic], value_format=fs.formats.Json(SCHEMA))


def test_schema_is_known_before_the_first_batch(source):
    with source.open() as stream:
        assert stream.schema.field("value").type == pa.struct(list(SCHEMA))
        assert stream.metrics()["records"] == 0


def test_pyarrow_record_batch_reader(source):
    with source.open() as stream:
        table = pa.RecordBatchReader.from_stream(stream).read_all()
    assert table.num_rows == 300
    assert sorted(v["n"] for v in table.column("value").to_pylist()) == list(range(300))


def test_polars_dataframe(source):
    import polars as pl

    with source.open() as stream:
        df = pl.DataFrame(stream)
    assert df.height == 300
    assert df.select(pl.col("value").struct.field("n").sum()).item() == sum(range(300))


def test_duckdb_query_over_the_stream(source):
    with source.open() as stream:
        rows = duckdb.sql("select value.kind, count(*), count(distinct partition) "
                          "from stream group by 1 order by 1").fetchall()
    assert rows == [("a", 150, 3), ("b", 150, 3)]


def test_pandas_from_read_all(source):
    df = source.read_all().to_pandas()
    assert len(df) == 300
    assert set(df["partition"]) == {0, 1, 2}
