"""Unbounded reads on the real broker: discovery, watermarks with idleness and alignment, metrics."""
from __future__ import annotations

import time

import pytest

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

import fastsource as fs
from fastsource.base.watermarks import WATERMARK_METADATA_KEY


def poll_until(stream, predicate, timeout=60):
    """Poll batches until `predicate(batches so far)` holds; returns the batches."""
    batches = []
    deadline = time.monotonic() + timeout
    while not predicate(batches):
        assert time.monotonic() < deadline, "condition not reached in time"
        batch = stream.poll(0.2)
        if batch is not None:
            batches.append(batch)
    return batches


def produce_acknowledged(bootstrap, topic, value, partition, timeout=30):
    """Produce one record to a partition created a moment ago, and wait until the broker acknowledged it.

    Right after create_partitions returns, the broker's metadata may still lack the new partition:
    a producer then fails the record locally (_UNKNOWN_PARTITION in its delivery report, which
    flush() does not raise). So each attempt takes a fresh producer, whose metadata must list the
    partition before it produces, and the delivery report is checked.
    """
    deadline = time.monotonic() + timeout
    reports = []
    while not reports or reports[-1] is not None:
        assert time.monotonic() < deadline, f"{topic}[{partition}] never acknowledged a record: {reports}"
        fresh = Producer({"bootstrap.servers": bootstrap})
        if partition in fresh.list_topics(topic, timeout=10).topics[topic].partitions:
            fresh.produce(topic, value, partition=partition,
                          on_delivery=lambda err, msg: reports.append(err))
            fresh.flush()
        else:
            time.sleep(0.2)


def partitions_seen(batches):
    return {(t, p) for b in batches for t, p in zip(b.column("topic").to_pylist(),
                                                    b.column("partition").to_pylist())}


@pytest.mark.kfake
def test_discovery_picks_up_new_partitions_from_their_start(bootstrap, make_topic, producer,
                                                           any_transport):
    topic = make_topic(partitions=1)
    producer.produce(topic, b"first", partition=0)
    producer.flush()
    source = fs.KafkaSource(bootstrap, topics=[topic], stopping_offsets=None,
                            partition_discovery_interval_ms=300)
    with source.open() as stream:
        poll_until(stream, lambda b: sum(x.num_rows for x in b) == 1)
        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.create_partitions([NewPartitions(topic, 3)])[topic].result()
        for p in (1, 2):
            produce_acknowledged(bootstrap, topic, f"p{p}".encode(), p)
        batches = poll_until(stream, lambda b: partitions_seen(b) == {(topic, 1), (topic, 2)})
    values = sorted(v for b in batches for v in b.column("value").to_pylist())
    assert values == [b"p1", b"p2"]


@pytest.mark.kfake
def test_pattern_subscription_picks_up_new_topics(bootstrap, make_topic, producer):
    first = make_topic(prefix="pat")
    prefix = first.rsplit("-", 1)[0]
    source = fs.KafkaSource(bootstrap, topic_pattern=rf"{first}|{first}-later", stopping_offsets=None,
                            partition_discovery_interval_ms=300)
    with source.open() as stream:
        producer.produce(first, b"a", partition=0)
        producer.flush()
        poll_until(stream, lambda b: sum(x.num_rows for x in b) == 1)
        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.create_topics([NewTopic(f"{first}-later", 1, 1)])[f"{first}-later"].result()
        producer.produce(f"{first}-later", b"b", partition=0)
        producer.flush()
        batches = poll_until(stream, lambda b: (f"{first}-later", 0) in partitions_seen(b))
    assert prefix == "pat"
    assert [v for b in batches for v in b.column("value").to_pylist()] == [b"b"]
    admin.delete_topics([f"{first}-later"])


def test_watermark_waits_for_idle_partitions_then_advances(bootstrap, make_topic, producer):
    topic = make_topic(partitions=2)
    for i in range(10):
        producer.produce(topic, b"x", partition=0, timestamp=1_000_000 + i)
    producer.flush()
    strategy = fs.WatermarkStrategy(out_of_orderness_ms=5, idle_timeout_ms=800, emit_in_metadata=True)
    source = fs.KafkaSource(bootstrap, topics=[topic], stopping_offsets=None, watermark_strategy=strategy)
    with source.open() as stream:
        first = poll_until(stream, lambda b: sum(x.num_rows for x in b) == 10)
        assert stream.watermark() is None  # partition 1 has emitted nothing and is not idle yet
        # Partition 0 keeps receiving records (so it stays active); partition 1 never does, and only
        # once it counts as idle can the watermark follow partition 0.
        deadline = time.monotonic() + 20
        ts = 1_000_010
        while stream.watermark() is None and time.monotonic() < deadline:
            producer.produce(topic, b"y", partition=0, timestamp=ts)
            producer.flush()
            ts += 1
            stream.poll(0.2)
        assert stream.metrics()["splits"][f"{topic}-1"]["idle"]
        assert stream.watermark() is not None and 1_000_009 - 5 <= stream.watermark() < ts - 5
        producer.produce(topic, b"z", partition=0, timestamp=2_000_000)
        producer.flush()
        poll_until(stream, lambda b: any(2_000_000 - 5 == int(x.schema.metadata[
            WATERMARK_METADATA_KEY]) for x in b))
    assert WATERMARK_METADATA_KEY not in (first[0].schema.metadata or {})
    assert stream.watermark() == 2_000_000 - 5


def test_alignment_pauses_the_split_that_runs_ahead_until_the_slow_one_catches_up(any_transport,
        bootstrap, make_topic, producer):
    topic = make_topic(partitions=2)
    for i in range(10):
        producer.produce(topic, b"slow", partition=0, timestamp=1_000_000 + i)
        producer.produce(topic, b"fast", partition=1, timestamp=2_000_000 + i)
    producer.flush()
    source = fs.KafkaSource(bootstrap, topics=[topic], stopping_offsets=None,
                            watermark_strategy=fs.WatermarkStrategy(alignment_max_drift_ms=1000))
    with source.open() as stream:
        poll_until(stream, lambda b: sum(x.num_rows for x in b) == 20)
        assert stream.watermark() == 1_000_009
        # the coordinator decides from the watermarks the reader reports: the pause comes promptly,
        # not within the same poll
        poll_until(stream, lambda b: stream.metrics()["splits"][f"{topic}-1"]["paused"], timeout=20)
        assert not stream.metrics()["splits"][f"{topic}-0"]["paused"]
        producer.produce(topic, b"fast-late", partition=1, timestamp=2_000_100)
        producer.flush()
        held = [stream.poll(0.3) for _ in range(5)]
        assert all(b is None for b in held), "a paused split must not emit"
        producer.produce(topic, b"slow-catch-up", partition=0, timestamp=2_000_050)
        producer.flush()
        batches = poll_until(stream, lambda b: b"fast-late" in
                             [v for x in b for v in x.column("value").to_pylist()])
    values = [v for x in batches for v in x.column("value").to_pylist()]
    assert values.index(b"slow-catch-up") < values.index(b"fast-late")


def test_metrics_report_lag_and_progress(bootstrap, make_topic, producer):
    topic = make_topic(partitions=1)
    for i in range(1000):
        producer.produce(topic, b"z" * 10, partition=0)
    producer.flush()
    source = fs.KafkaSource(bootstrap, topics=[topic], stopping_offsets=None,
                            batch_limits=fs.BatchLimits(max_rows=100))
    with source.open() as stream:
        poll_until(stream, lambda b: sum(x.num_rows for x in b) >= 100)
        metrics = stream.metrics()
    split = metrics["splits"][f"{topic}-0"]
    assert metrics["records"] == split["records"] == split["current_offset"]
    assert metrics["bytes"] == 10 * metrics["records"]
    assert split["high_watermark"] == 1000
    assert split["pending_records"] == 1000 - split["current_offset"]
    assert metrics["fetch_time_s"] > 0 and metrics["emit_time_s"] > 0


def test_deleting_a_topic_ends_its_splits_instead_of_hanging(bootstrap, make_topic, producer, caplog):
    topic = make_topic(partitions=1)
    for _ in range(10):
        producer.produce(topic, b"x", partition=0)
    producer.flush()
    admin = AdminClient({"bootstrap.servers": bootstrap})
    # The stopping offset lies past the end: without the deletion the read would wait for offset 100.
    source = fs.KafkaSource(bootstrap, topics=[topic],
                            stopping_offsets=fs.OffsetsInitializer.offsets({(topic, 0): 100}))
    with source.open() as stream:
        rows = sum(b.num_rows for b in poll_until(stream, lambda b: sum(x.num_rows for x in b) == 10))
        admin.delete_topics([topic])[topic].result()
        deadline = time.monotonic() + 60
        while not stream.ended:
            assert time.monotonic() < deadline, "the read hung on a deleted topic"
            stream.poll(0.5)
    assert rows == 10
    assert any("deleted" in r.getMessage() and topic in r.getMessage() for r in caplog.records)
