"""The runtime on the real broker: failover without rollback, offset-range splits, restore with
another parallelism, checkpoints that belong to their source, re-resolved ends, group commits at
the end of a bounded read."""
from __future__ import annotations

import json
import threading
import time
from collections import Counter

import pytest
from confluent_kafka import Consumer, TopicPartition

import fastsource as fs
from fastsource.kafka.reader.spec import kafka_split_reader
from fastsource.runtime.handles import InProcessRuntime
from fastsource.runtime.transport import PicklingTransport


def fill(producer, topic, partitions, per_partition, start=0):
    for p in range(partitions):
        for i in range(start, start + per_partition):
            producer.produce(topic, value=f"{p}:{i}".encode(), partition=p)
    producer.flush()


def rows_of(batches):
    return Counter((b.column("partition")[i].as_py(), b.column("offset")[i].as_py())
                   for b in batches for i in range(b.num_rows))


class FailingSplitReaders:
    """A split reader factory whose `fail_readers`-th created split readers crash (an unexpected,
    non-fatal error) after `after` fetches that returned records; the others are the real ones."""

    def __init__(self, fail_readers: set[int], after: int = 3,
                 error: Exception = RuntimeError("injected fetcher crash")) -> None:
        self.fail_readers, self.after, self.error = fail_readers, after, error
        self.created = 0
        self.failures = 0
        self._lock = threading.Lock()

    def __call__(self, spec):
        with self._lock:
            index = self.created
            self.created += 1
        real = kafka_split_reader(spec)
        if index not in self.fail_readers:
            return real
        factory = self
        fetched = [0]

        class Failing:
            def __getattr__(self, name):
                return getattr(real, name)

            def fetch(self):
                if fetched[0] >= factory.after:
                    factory.failures += 1
                    raise factory.error
                records = real.fetch()
                if records.batch is not None:
                    fetched[0] += 1
                return records

        return Failing()


def test_a_reader_dying_mid_read_is_replaced_without_loss_or_repeat(bootstrap, make_topic, producer):
    """One of three readers crashes mid-read; its splits resume right after the last record handed
    out, on a new reader: every record exactly once, no checkpoint, no rollback."""
    topic = make_topic(partitions=3)
    fill(producer, topic, 3, 3000)
    faults = FailingSplitReaders({0}, after=3)
    source = fs.KafkaSource(bootstrap, topics=[topic], batch_limits=fs.BatchLimits(max_rows=100))
    runtime = InProcessRuntime(PicklingTransport, split_reader_factory=faults)
    with source.open(parallelism=3, runtime=runtime) as stream:
        rows = rows_of(list(stream))
    assert faults.failures == 1 and faults.created >= 4
    assert len(rows) == 9000 and set(rows.values()) == {1}


def test_ranges_survive_a_reader_dying_too(bootstrap, make_topic, producer):
    topic = make_topic(partitions=1)
    fill(producer, topic, 1, 4000)
    faults = FailingSplitReaders({1}, after=2)
    source = fs.KafkaSource(bootstrap, topics=[topic], batch_limits=fs.BatchLimits(max_rows=100),
                            min_splits=4)
    with source.open(parallelism=2, runtime=InProcessRuntime(split_reader_factory=faults)) as stream:
        rows = rows_of(list(stream))
    assert faults.failures == 1
    assert len(rows) == 4000 and set(rows.values()) == {1}


def test_a_reader_failing_again_and_again_fails_the_stream(bootstrap, make_topic, producer):
    topic = make_topic(partitions=1)
    fill(producer, topic, 1, 100)
    faults = FailingSplitReaders(set(range(100)), after=0)
    source = fs.KafkaSource(bootstrap, topics=[topic])
    with source.open(parallelism=1, runtime=InProcessRuntime(split_reader_factory=faults)) as stream:
        with pytest.raises(fs.ReaderFailedError, match="reader 0 failed 4 times in a row"):
            list(stream)
    assert faults.failures == 4


def test_a_fatal_error_fails_the_stream_without_replacing_the_reader(bootstrap, make_topic, producer):
    topic = make_topic(partitions=1)
    fill(producer, topic, 1, 100)
    error = fs.OffsetOutOfRangeError("data loss: injected", topic=topic, partition=0, offset=5)
    faults = FailingSplitReaders({0}, after=0, error=error)
    source = fs.KafkaSource(bootstrap, topics=[topic])
    with source.open(parallelism=1, runtime=InProcessRuntime(split_reader_factory=faults)) as stream:
        with pytest.raises(fs.OffsetOutOfRangeError, match="injected"):
            list(stream)
    assert faults.created == 1


@pytest.mark.kfake
def test_ranges_of_one_partition_are_read_by_every_reader_in_offset_order(bootstrap, make_topic,
                                                                         producer):
    topic = make_topic(partitions=1)
    fill(producer, topic, 1, 3000)
    source = fs.KafkaSource(bootstrap, topics=[topic], batch_limits=fs.BatchLimits(max_rows=200))
    with source.open(parallelism=3) as stream:
        list(stream)  # without ranges: one split, one reader
        assert sorted(len(r.metrics()["finished_splits"]) for r in stream.readers) == [0, 0, 1]
    ranged = fs.KafkaSource(bootstrap, topics=[topic], batch_limits=fs.BatchLimits(max_rows=200),
                            min_splits=3)
    with ranged.open(parallelism=3) as stream:
        list(stream)
        finished = [r.metrics()["finished_splits"] for r in stream.readers]
    assert sorted(len(f) for f in finished) == [1, 1, 1]
    assert sorted(s for f in finished for s in f) == [f"{topic}-0@0-1000", f"{topic}-0@1000-2000",
                                                      f"{topic}-0@2000-3000"]
    table = source.read_all(parallelism=3)  # read_all cuts ranges by itself
    assert table.column("offset").to_pylist() == list(range(3000))


@pytest.mark.kfake
def test_several_ranges_per_reader_are_read_one_after_another(bootstrap, make_topic, producer):
    topic = make_topic(partitions=2)
    fill(producer, topic, 2, 1000)
    source = fs.KafkaSource(bootstrap, topics=[topic], max_records_per_split=150,
                            batch_limits=fs.BatchLimits(max_rows=64))
    table = source.read_all(parallelism=2)
    rows = list(zip(table.column("partition").to_pylist(), table.column("offset").to_pylist()))
    for p in (0, 1):
        assert [o for q, o in rows if q == p] == list(range(1000))


def test_ranges_need_a_bounded_source(bootstrap):
    with pytest.raises(fs.ConfigError, match="need stopping_offsets"):
        fs.KafkaSource(bootstrap, topics=["t"], stopping_offsets=None, min_splits=4)
    with pytest.raises(fs.ConfigError, match="max_records_per_split"):
        fs.KafkaSource(bootstrap, topics=["t"], max_records_per_split=0)


def read_some_then_checkpoint(source, parallelism, directory, batches):
    """Hand out `batches` batches, checkpoint, and abandon the stream: the rows handed out."""
    with source.open(parallelism=parallelism, checkpoint_dir=directory) as stream:
        taken = [next(stream) for _ in range(batches)]
        stream.checkpoint()
    return taken


@pytest.mark.kfake
@pytest.mark.parametrize("before,after,ranges", [(3, 2, 6), (2, 5, None)])
def test_restore_with_another_parallelism_is_exactly_once(bootstrap, make_topic, producer, tmp_path,
                                                         any_transport, before, after, ranges):
    topic = make_topic(partitions=4)
    fill(producer, topic, 4, 1000)
    source = fs.KafkaSource(bootstrap, topics=[topic], batch_limits=fs.BatchLimits(max_rows=150),
                            min_splits=ranges)
    first = read_some_then_checkpoint(source, before, tmp_path, batches=6)
    with source.open(parallelism=after, checkpoint_dir=tmp_path) as stream:
        rest = list(stream)
    rows = rows_of(first + rest)
    assert len(rows) == 4000 and set(rows.values()) == {1}


def test_a_version_1_checkpoint_is_still_restored(bootstrap, make_topic, producer, tmp_path):
    """A checkpoint document written before split ids were stored (split serializer 1, enumerator
    state 1, no source identity) restores where it says."""
    topic = make_topic(partitions=2)
    fill(producer, topic, 2, 50)
    document = {
        "version": 1, "checkpoint_id": 7, "parallelism": 2,
        "enumerator": {"version": 1, "known_partitions": [[topic, 0], [topic, 1]],
                       "pending_splits": [{"version": 1, "topic": topic, "partition": 1,
                                           "starting_offset": 45, "stopping_offset": 50}],
                       "initial_discovery_done": True},
        "splits": [{"version": 1, "topic": topic, "partition": 0, "starting_offset": 30,
                    "stopping_offset": 50}],
    }
    (tmp_path / "chk-000000000007.json").write_text(json.dumps(document))
    with fs.KafkaSource(bootstrap, topics=[topic]).open(parallelism=1, checkpoint_dir=tmp_path) as stream:
        assert stream.restored_checkpoint_id == 7
        rows = rows_of(list(stream))
    assert sorted(rows) == [(0, o) for o in range(30, 50)] + [(1, o) for o in range(45, 50)]


def test_a_checkpoint_of_another_subscription_is_refused_naming_both(bootstrap, make_topic, producer,
                                                                    tmp_path):
    first, second = make_topic(), make_topic()
    fill(producer, first, 1, 10)
    with fs.KafkaSource(bootstrap, topics=[first]).open(checkpoint_dir=tmp_path) as stream:
        list(stream)
        stream.checkpoint()
    with pytest.raises(fs.CheckpointMismatchError) as caught:
        fs.KafkaSource(bootstrap, topics=[second]).open(checkpoint_dir=tmp_path)
    assert first in str(caught.value) and second in str(caught.value)
    assert isinstance(caught.value, fs.FastsourceError)


@pytest.mark.kfake
def test_rerunning_a_finished_bounded_read_reads_exactly_the_new_records(bootstrap, make_topic,
                                                                        producer, tmp_path):
    topic = make_topic(partitions=2)
    fill(producer, topic, 2, 100)
    source = fs.KafkaSource(bootstrap, topics=[topic])

    def run():
        with source.open(parallelism=2, checkpoint_dir=tmp_path) as stream:
            rows = rows_of(list(stream))
            stream.checkpoint()
        return rows

    assert len(run()) == 200
    assert run() == Counter()
    fill(producer, topic, 2, 30, start=100)
    assert sorted(run()) == [(p, o) for p in (0, 1) for o in range(100, 130)]


def test_a_followed_read_resumed_bounded_ends_at_the_latest_offsets(bootstrap, make_topic, producer,
                                                                   tmp_path):
    """--to follow then --to latest: the resumed read takes the new end and finishes."""
    topic = make_topic(partitions=1)
    fill(producer, topic, 1, 100)
    follow = fs.KafkaSource(bootstrap, topics=[topic], stopping_offsets=None,
                            batch_limits=fs.BatchLimits(max_rows=40))
    with follow.open(checkpoint_dir=tmp_path) as stream:
        first = [next(stream)]
        stream.checkpoint()
    fill(producer, topic, 1, 20, start=100)
    bounded = fs.KafkaSource(bootstrap, topics=[topic], batch_limits=fs.BatchLimits(max_rows=40))
    deadline = time.monotonic() + 60
    with bounded.open(checkpoint_dir=tmp_path) as stream:
        rest = []
        while not stream.ended:
            assert time.monotonic() < deadline, "the resumed bounded read never ended"
            batch = stream.poll(0.5)
            if batch is not None:
                rest.append(batch)
    rows = rows_of(first + rest)
    assert sorted(rows) == [(0, o) for o in range(120)] and set(rows.values()) == {1}


@pytest.mark.kfake
@pytest.mark.parametrize("ranges", [None, 3])
def test_a_bounded_read_commits_the_end_offsets_to_the_group(bootstrap, make_topic, producer,
                                                            tmp_path, ranges):
    topic = make_topic(partitions=2)
    fill(producer, topic, 2, 500)
    group = f"g-{topic}"
    source = fs.KafkaSource(bootstrap, topics=[topic], group_id=group, min_splits=ranges,
                            batch_limits=fs.BatchLimits(max_rows=100))
    with source.open(parallelism=2, checkpoint_dir=tmp_path) as stream:
        for i, _ in enumerate(stream):
            if i % 3 == 0:
                stream.checkpoint()
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        committed = consumer.committed([TopicPartition(topic, p) for p in (0, 1)], timeout=10)
    finally:
        consumer.close()
    assert {tp.partition: tp.offset for tp in committed} == {0: 500, 1: 500}


def test_an_asynchronous_commit_is_flushed_before_the_stream_closes(bootstrap, make_topic, producer,
                                                                   tmp_path):
    topic = make_topic(partitions=1)
    fill(producer, topic, 1, 300)
    group = f"g-{topic}"
    source = fs.KafkaSource(bootstrap, topics=[topic], group_id=group, stopping_offsets=None,
                            batch_limits=fs.BatchLimits(max_rows=100))
    with source.open(checkpoint_dir=tmp_path) as stream:
        handed = next(stream).num_rows
        stream.checkpoint()  # commits asynchronously; the stream closes at once
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        committed = consumer.committed([TopicPartition(topic, 0)], timeout=10)
    finally:
        consumer.close()
    assert committed[0].offset == handed
