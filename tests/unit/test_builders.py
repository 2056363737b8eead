"""The column builders shared by the consumer and the decoders (fastsource/formats/_builders.pyx):
buffers Arrow lets go of serve the next batches from a bounded pool, sized from the last batch; a
reused block never carries an earlier batch's values into a later one; and building the arrays a
read starts with does not import pandas (pyarrow's `pa.array(list)` would, ~0.5 s)."""
from __future__ import annotations

import importlib.util
import io
import subprocess
import sys
import textwrap

import fastavro
import pyarrow as pa
import pytest

from fastsource.formats import _builders
from fastsource.formats.avro import Avro

SCHEMA = {"type": "record", "name": "Row", "fields": [
    {"name": "id", "type": "long"},
    {"name": "name", "type": "string"},
    {"name": "note", "type": ["null", "string"]},
    {"name": "ok", "type": "boolean"},
    {"name": "level", "type": {"type": "enum", "name": "Level", "symbols": ["LOW", "MID", "HIGH"]}},
    {"name": "tags", "type": {"type": "array", "items": "string"}},
    {"name": "metrics", "type": {"type": "map", "values": ["null", "double"]}},
]}
PARSED = fastavro.parse_schema(SCHEMA)
LIMITS = _builders.POOL_LIMITS


def rows(n: int, seed: int) -> list[dict]:
    """`n` records whose nulls, lengths and values depend on `seed`, so two batches differ everywhere."""
    return [{"id": i * seed, "name": f"{seed}-{'x' * ((i + seed) % 13)}",
             "note": None if (i + seed) % 3 == 0 else f"n{i % 97}", "ok": (i + seed) % 2 == 0,
             "level": ["LOW", "MID", "HIGH"][(i * seed) % 3],
             "tags": [f"t{seed}{j}" for j in range((i + seed) % 4)],
             "metrics": {f"m{j}": None if (j + seed) % 2 else j / seed for j in range((i * seed) % 3)}}
            for i in range(n)]


def encoded(records: list[dict]) -> pa.Array:
    out = []
    for record in records:
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, PARSED, record)
        out.append(buf.getvalue())
    return pa.array(out, pa.binary())


def as_python(array: pa.Array) -> list[dict]:
    """Decoded rows in fastavro's shapes (maps as dicts) to compare with the records written."""
    return [dict(row, metrics=dict(row["metrics"])) for row in array.to_pylist()]


@pytest.fixture(autouse=True)
def empty_pool():
    _builders.release_pool()
    yield
    _builders.release_pool()


def test_buffers_arrow_releases_serve_the_next_batch_of_the_layout():
    fmt = Avro(schema=SCHEMA)
    raw = encoded(rows(20_000, 1))
    first = fmt.decode(raw)
    assert _builders.pool_stats() == (0, 0)  # nothing released yet
    del first
    blocks, size = _builders.pool_stats()
    assert blocks > 0 and size >= blocks * LIMITS["min_block"]  # the batch's buffers are kept
    second = fmt.decode(raw)
    assert _builders.pool_stats()[0] < blocks  # ... and taken by the next batch, reserved up front
    assert as_python(second) == rows(20_000, 1)


def test_a_reused_block_carries_nothing_of_the_batch_before():
    fmt = Avro(schema=SCHEMA)
    for seed, n in ((1, 30_000), (2, 30_000), (5, 7_000), (3, 45_000), (7, 1), (4, 30_000)):
        records = rows(n, seed)
        decoded = fmt.decode(encoded(records))
        assert as_python(decoded) == records, f"batch of seed {seed}, {n} rows"
        del decoded  # its blocks serve the next batch


def test_the_pool_keeps_at_most_its_bound():
    fmt = Avro(schema=SCHEMA)
    raw = encoded(rows(50_000, 3))
    alive = [fmt.decode(raw) for _ in range(40)]
    assert sum(batch.nbytes for batch in alive) > LIMITS["bytes"]  # more than the pool may keep ...
    del alive  # ... released at once
    blocks, size = _builders.pool_stats()
    assert 0 < blocks <= LIMITS["blocks"]
    assert 0 < size <= LIMITS["bytes"]


def test_release_pool_frees_every_block():
    fmt = Avro(schema=SCHEMA)
    fmt.decode(encoded(rows(20_000, 2)))
    assert _builders.pool_stats()[0] > 0
    _builders.release_pool()
    assert _builders.pool_stats() == (0, 0)


def test_a_layout_pickles_without_its_sizes():
    import pickle

    layout = _builders.BatchLayout([(2, 8, 0, (), pa.int64(), None, -1)])
    copy = pickle.loads(pickle.dumps(layout))
    assert copy.nodes == layout.nodes and len(copy) == 1


def test_string_array_equals_pyarrows():
    values = ["", "a", "naïve", "日本", "x" * 1000]
    assert _builders.string_array(values).equals(pa.array(values, pa.string()))
    assert _builders.string_array([]).equals(pa.array([], pa.string()))


def test_formats_start_without_importing_pandas():
    assert importlib.util.find_spec("pandas") is not None, "pandas is in the test extra: this test needs it"
    script = textwrap.dedent("""
        import sys
        import pyarrow as pa
        import fastsource as fs
        from fastsource.benchmark import bench_pb2, schemas
        avro = fs.formats.Avro(schema=schemas.WIDE_AVRO)
        assert avro.decode(pa.nulls(0, pa.binary())).type == avro.output_type()
        proto = fs.formats.Protobuf(bench_pb2.Wide)
        assert len(proto.decode(pa.nulls(0, pa.binary()))) == 0
        assert fs.formats.Function(lambda raw: raw).output_type() == pa.binary()
        assert fs.formats.Json().decode(pa.nulls(0, pa.binary())).type == pa.struct([])
        print("pandas" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
