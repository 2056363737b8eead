"""The compiled consumer's batches on the real broker: a batch that fails part-way (while its buffers
move into Arrow) leaves no stale row, count or buffer in the builders the next batch is built in."""
from __future__ import annotations

import time

import pyarrow as pa
import pytest

from fastsource.kafka import _consumer
from fastsource.kafka.reader.split_reader import consumer_config


class ArrowRefusingBatches:
    """pyarrow as the consumer unit sees it, except that making the record batch fails: the batch's
    columns have already left the builders by then."""

    def __getattr__(self, name):
        if name == "RecordBatch":
            raise MemoryError("scripted: the record batch cannot be made")
        return getattr(pa, name)


def fetch_until(consumer, done, timeout=30):
    """Fetch until `done(batches, finished)`; returns the batches and finished split ids."""
    batches, finished = [], []
    deadline = time.monotonic() + timeout
    while not done(batches, finished):
        assert time.monotonic() < deadline, f"no end: {len(batches)} batches, finished {finished}"
        batch, _, ended = consumer.fetch(max_wait_ms=100)
        if batch is not None:
            batches.append(batch)
        finished += ended
    return batches, finished


@pytest.mark.parametrize("include_headers", [False, True])
def test_a_batch_that_fails_part_way_leaves_the_builders_empty(bootstrap, make_topic, producer,
                                                               monkeypatch, include_headers):
    topic = make_topic()
    for i in range(10):
        producer.produce(topic, value=b"first %d" % i, key=None if i % 2 else b"k", partition=0,
                         headers=[("h", b"%d" % i)])
    producer.flush()
    consumer = _consumer.Consumer(consumer_config(bootstrap, None, {}), include_headers)
    try:
        consumer.add_splits([("s", topic, 0, 0, 20)])
        monkeypatch.setattr(_consumer, "pa", ArrowRefusingBatches())
        deadline = time.monotonic() + 30
        with pytest.raises(MemoryError, match="scripted"):
            while time.monotonic() < deadline:
                consumer.fetch(max_wait_ms=100)
        monkeypatch.undo()
        # The failed batch took some first records with it (its progress was never reported);
        # what follows must be exactly the records after them, in consistent columns.
        for i in range(10):
            producer.produce(topic, value=b"second %d" % i, partition=0, headers=[("h", b"x")])
        producer.flush()
        batches, finished = fetch_until(consumer, lambda b, f: "s" in f)
    finally:
        consumer.close()
    for batch in batches:
        batch.validate(full=True)
        assert batch.schema == _consumer.raw_schema(include_headers)
    offsets = [o for batch in batches for o in batch.column("offset").to_pylist()]
    assert offsets and offsets == list(range(offsets[0], 20)) and offsets[0] > 0
    values = [v for batch in batches for v in batch.column("value").to_pylist()]
    assert values[-10:] == [b"second %d" % i for i in range(10)]
    if include_headers:
        headers = [h for batch in batches for h in batch.column("headers").to_pylist()]
        assert headers[-1] == [{"key": "h", "value": b"x"}]
