"""A checkpoint that fails loses nothing: the exactly-once sink keeps what it had made pending and the
next checkpoint commits every row exactly once. A closed stream refuses to checkpoint at once."""
from __future__ import annotations

import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import fastsource as fs


def committed_ids(sink: fs.ParquetDatasetSink) -> list[int]:
    return [i for f in sink.files() for i in pq.read_table(f).column("value").to_pylist()]


def take(stream: fs.SourceStream, sink: fs.ParquetDatasetSink, rows: int) -> int:
    """Hand batches to the sink until at least `rows` rows went through it."""
    taken = 0
    deadline = time.monotonic() + 60
    while taken < rows:
        assert time.monotonic() < deadline, f"only {taken} of {rows} rows came"
        batch = stream.poll(1.0)
        if batch is not None:
            sink.write(batch.select(["value"]))
            taken += batch.num_rows
    return taken


@pytest.mark.timeout(120)
def test_a_checkpoint_that_fails_once_is_retried_and_every_row_is_committed_once(
        bootstrap, make_topic, producer, tmp_path, monkeypatch):
    topic = make_topic()
    for i in range(3000):
        producer.produce(topic, str(i).encode())
    producer.flush(30)
    source = fs.KafkaSource(bootstrap, topics=[topic], value_format=fs.formats.Function(
        lambda raw: raw.cast(pa.string()).cast(pa.int64()), pa.int64()),
        batch_limits=fs.BatchLimits(max_rows=250))
    import fastsource.runtime.checkpoint as checkpoint_module

    mkstemp, failures = checkpoint_module.tempfile.mkstemp, []

    def unwritable_once(*args, **kwargs):
        if not failures:
            failures.append(1)
            raise PermissionError(13, "Permission denied", str(tmp_path / "chk"))
        return mkstemp(*args, **kwargs)

    with source.open(checkpoint_dir=tmp_path / "chk") as stream:
        sink = stream.attach(fs.ParquetDatasetSink(tmp_path / "out", max_rows_per_file=400))
        handed = take(stream, sink, 1000)
        assert stream.checkpoint() == 1
        handed += take(stream, sink, 1000)
        monkeypatch.setattr(checkpoint_module.tempfile, "mkstemp", unwritable_once)
        with pytest.raises(fs.CheckpointError, match="cannot write checkpoint 2"):
            stream.checkpoint()
        handed += take(stream, sink, 3000 - handed)
        assert stream.checkpoint() == 2
    ids = committed_ids(sink)
    assert handed == 3000 and sorted(ids) == list(range(3000))


@pytest.mark.timeout(45)  # it used to wait 60 s for a barrier that never came
def test_checkpoint_on_a_closed_stream_fails_at_once(bootstrap, make_topic, tmp_path):
    topic = make_topic()
    stream = fs.KafkaSource(bootstrap, topics=[topic]).open(checkpoint_dir=tmp_path)
    stream.close()
    with pytest.raises(fs.FastsourceError, match="closed stream"):
        stream.checkpoint()
