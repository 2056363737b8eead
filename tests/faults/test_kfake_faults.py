"""Protocol faults a real broker cannot stage on demand, staged by franz-go's kfake (its requests are
intercepted and answered by the cluster's fault controls): each has the outcome the README promises.
A transient error is invisible (every record exactly once, in order); OFFSET_OUT_OF_RANGE mid-read is
data loss, never a silent reset; a refused commit is counted and logged, never fatal."""
from __future__ import annotations

import logging
import time
from collections import Counter

import pytest
from confluent_kafka import Producer

import fastsource as fs
from fastsource.kafka.admin import KafkaAdmin

# Every test here runs on the session's kfake cluster (`make_topic` and `producer` follow `bootstrap`).
pytestmark = pytest.mark.parametrize("bootstrap", ["kfake"], indirect=True)

PER_PARTITION = 600
# Small fetches: a partition is read in many fetches (one producer batch of 20 records each), so a
# fault armed at an offset past the first fetch meets a fetch in the middle of the read.
SMALL_FETCHES = {"max.partition.fetch.bytes": "1024", "fetch.max.bytes": "4096",
                 "message.max.bytes": "4096"}


def fill(bootstrap: str, topic: str, partitions: int, per_partition: int = PER_PARTITION) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "batch.num.messages": 20, "linger.ms": 2})
    for p in range(partitions):
        for i in range(per_partition):
            producer.produce(topic, value=f"{p}:{i}".encode(), partition=p)
    assert producer.flush(30) == 0


def assert_exact(rows, partitions: int, per_partition: int = PER_PARTITION) -> None:
    """Every record once, each partition in offset order."""
    counts = Counter(rows)
    assert len(counts) == partitions * per_partition and set(counts.values()) == {1}
    for p in range(partitions):
        assert [o for q, o in rows if q == p] == list(range(per_partition))


def rows_of(table_or_batches) -> list[tuple[int, int]]:
    batches = table_or_batches if isinstance(table_or_batches, list) else [table_or_batches]
    return [(p, o) for b in batches
            for p, o in zip(b.column("partition").to_pylist(), b.column("offset").to_pylist())]


def test_not_leader_on_a_fetch_is_retried_invisibly(bootstrap, kfake_cluster, make_topic):
    topic = make_topic(partitions=3)
    fill(bootstrap, topic, 3)
    fault = kfake_cluster.fault("Fetch", "NOT_LEADER_OR_FOLLOWER", topic=topic, partitions=[1],
                                min_fetch_offset=200, count=3)
    table = fs.KafkaSource(bootstrap, topics=[topic], properties=SMALL_FETCHES).read_all(parallelism=2)
    assert kfake_cluster.hits(fault) == 3
    assert_exact(rows_of(table), 3)


def test_offset_out_of_range_mid_read_is_data_loss_naming_topic_partition_offset(
        bootstrap, kfake_cluster, make_topic):
    topic = make_topic(partitions=2)
    fill(bootstrap, topic, 2)
    fault = kfake_cluster.fault("Fetch", "OFFSET_OUT_OF_RANGE", topic=topic, partitions=[1],
                                min_fetch_offset=300, count=-1)
    handed = []
    source = fs.KafkaSource(bootstrap, topics=[topic], properties=SMALL_FETCHES,
                            batch_limits=fs.BatchLimits(max_rows=50))
    try:
        with source.open(parallelism=1) as stream:
            with pytest.raises(fs.OffsetOutOfRangeError) as info:
                for batch in stream:
                    handed.append(batch)
    finally:
        kfake_cluster.remove(fault)
    error = info.value
    assert kfake_cluster.hits(fault) >= 1
    assert (error.topic, error.partition) == (topic, 1)
    assert 300 <= error.offset < PER_PARTITION
    assert f"{topic}[1] at offset {error.offset}" in str(error)
    # Nothing past the loss was handed out, and nothing before it was skipped: no silent reset.
    assert [o for p, o in rows_of(handed) if p == 1] == list(range(len([1 for p, _ in rows_of(handed)
                                                                         if p == 1])))
    assert all(o < error.offset for p, o in rows_of(handed) if p == 1)


def test_a_slow_list_offsets_delays_the_read_and_loses_nothing(bootstrap, kfake_cluster, make_topic):
    topic = make_topic(partitions=2)
    fill(bootstrap, topic, 2)
    delay = kfake_cluster.delay("ListOffsets", 2500, topic=topic, count=2)
    table = fs.KafkaSource(bootstrap, topics=[topic]).read_all(parallelism=2)
    assert kfake_cluster.hits(delay) == 2
    assert_exact(rows_of(table), 2)


def test_a_list_offsets_refused_for_a_moment_is_retried(bootstrap, kfake_cluster, make_topic):
    topic = make_topic(partitions=2)
    fill(bootstrap, topic, 2)
    fault = kfake_cluster.fault("ListOffsets", "NOT_LEADER_OR_FOLLOWER", topic=topic, count=2)
    table = fs.KafkaSource(bootstrap, topics=[topic]).read_all()
    assert kfake_cluster.hits(fault) == 2
    assert_exact(rows_of(table), 2)


def test_a_list_offsets_failing_for_good_fails_the_read_naming_the_cause(bootstrap, kfake_cluster,
                                                                         make_topic):
    topic = make_topic(partitions=2)
    fill(bootstrap, topic, 2, per_partition=10)
    fault = kfake_cluster.fault("ListOffsets", "UNKNOWN_SERVER_ERROR", topic=topic, count=-1)
    try:
        with pytest.raises(fs.FastsourceError) as info:
            fs.KafkaSource(bootstrap, topics=[topic]).read_all()
    finally:
        kfake_cluster.remove(fault)
    # librdkafka names UNKNOWN_SERVER_ERROR (-1) "Unknown broker error".
    message = str(info.value)
    assert f"could not list offsets (earliest) of {topic} on {bootstrap}" in message
    assert "Unknown broker error" in message


def test_a_leader_change_mid_read_loses_and_repeats_nothing(bootstrap, kfake_cluster, make_topic):
    topic = make_topic(partitions=3)
    fill(bootstrap, topic, 3)
    source = fs.KafkaSource(bootstrap, topics=[topic], properties=SMALL_FETCHES,
                            batch_limits=fs.BatchLimits(max_rows=40))
    moved = {}
    batches = []
    with source.open(parallelism=2) as stream:
        for batch in stream:
            batches.append(batch)
            if len(batches) == 3:  # fetches of every partition are in flight
                for p in range(3):
                    before = kfake_cluster.leader(topic, p)
                    moved[p] = (before, kfake_cluster.move_leader(topic, p))
    assert all(before != after == kfake_cluster.leader(topic, p) for p, (before, after) in moved.items())
    assert_exact(rows_of(batches), 3)


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int | None]:
    """The group's committed offsets (None: none), read as fastsource reads them (kfake answers a
    group that never committed with GROUP_ID_NOT_FOUND, which confluent-kafka's consumer raises)."""
    admin = KafkaAdmin(bootstrap)
    return {p: o for (_, p), o in admin.committed(group, [(topic, p) for p in range(partitions)]).items()}


def test_a_coordinator_refusing_commits_is_reported_without_failing_the_read(
        bootstrap, kfake_cluster, make_topic, tmp_path, caplog):
    topic = make_topic(partitions=2)
    fill(bootstrap, topic, 2)
    group = f"g-{topic}"
    fault = kfake_cluster.fault("OffsetCommit", "GROUP_AUTHORIZATION_FAILED", group=group, count=-1)
    source = fs.KafkaSource(bootstrap, topics=[topic], group_id=group,
                            batch_limits=fs.BatchLimits(max_rows=200))
    batches = []
    try:
        with caplog.at_level(logging.WARNING), source.open(checkpoint_dir=tmp_path) as stream:
            for batch in stream:
                batches.append(batch)
                stream.checkpoint()
            deadline = time.monotonic() + 30
            while stream.metrics()["commits_failed"] == 0:
                assert time.monotonic() < deadline, stream.metrics()
                time.sleep(0.1)
            metrics = stream.metrics()
    finally:
        kfake_cluster.remove(fault)
    assert_exact(rows_of(batches), 2)
    assert kfake_cluster.hits(fault) >= 1
    assert metrics["commits_failed"] >= 1 and metrics["commits_succeeded"] == 0
    assert any("commit" in r.getMessage() and r.levelno >= logging.WARNING for r in caplog.records)
    assert committed(bootstrap, group, topic, 2) == {0: None, 1: None}  # nothing reached the group


def test_a_coordinator_refusing_commits_for_a_moment_still_gets_the_end_offsets(
        bootstrap, kfake_cluster, make_topic, tmp_path):
    topic = make_topic(partitions=2)
    fill(bootstrap, topic, 2)
    group = f"g-{topic}"
    fault = kfake_cluster.fault("OffsetCommit", "NOT_COORDINATOR", group=group, count=2)
    table = fs.KafkaSource(bootstrap, topics=[topic], group_id=group).read_all()
    assert_exact(rows_of(table), 2)
    assert kfake_cluster.hits(fault) == 2
    assert committed(bootstrap, group, topic, 2) == {0: PER_PARTITION, 1: PER_PARTITION}
