"""Many partitions: a 1,000-partition topic read exactly by read_all(), and split changes that touch
only the partitions they concern (incremental assignment: the others keep their positions and the
records already fetched for them)."""
from __future__ import annotations

import time

from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient

import fastsource as fs
from fastsource.kafka.reader.split_reader import BatchLimits, KafkaPartitionSplitReader, consumer_config
from fastsource.kafka.split import KafkaPartitionSplit


def fill(producer, topic: str, counts: dict[int, int]) -> None:
    """`counts[p]` records in partition p, values naming partition and index, acknowledged."""
    for partition, count in counts.items():
        for i in range(count):
            producer.produce(topic, f"{partition}:{i}".encode(), partition=partition)
        producer.poll(0)
    assert producer.flush(60) == 0


def test_read_all_reads_a_1000_partition_topic_exactly(bootstrap, make_topic, producer):
    """Every record of a 1,000-partition topic once, each partition's rows in offset order (a read
    that re-assigned every partition at each split change did not finish in 300 s)."""
    topic = make_topic(partitions=1000)
    fill(producer, topic, {p: 3 for p in range(1000)})
    table = fs.KafkaSource(bootstrap, topics=[topic], value_format=fs.formats.String()).read_all()
    assert table.num_rows == 3000
    rows = list(zip(table.column("partition").to_pylist(), table.column("offset").to_pylist(),
                    table.column("value").to_pylist()))
    assert len(set(rows)) == 3000
    assert sorted(rows) == sorted((p, i, f"{p}:{i}") for p in range(1000) for i in range(3))
    by_partition: dict[int, list[int]] = {}
    for partition, offset, _ in rows:
        by_partition.setdefault(partition, []).append(offset)
    assert all(offsets == [0, 1, 2] for offsets in by_partition.values())


def fetch_until(reader: KafkaPartitionSplitReader, done, timeout: float = 60.0) -> list[tuple[int, int]]:
    """(partition, offset) of every record fetched until `done(finished ids)` holds."""
    seen: list[tuple[str, int, int]] = []
    finished: set[str] = set()
    deadline = time.monotonic() + timeout
    while not done(finished):
        assert time.monotonic() < deadline, f"splits finished so far: {sorted(finished)}"
        records = reader.fetch()
        finished.update(records.finished_splits)
        if records.batch is not None:
            partitions = records.batch.column("partition").to_pylist()
            offsets = records.batch.column("offset").to_pylist()
            seen.extend(zip(partitions, offsets))
    return seen


def test_adding_and_removing_splits_keeps_the_other_partitions_fetched_records(bootstrap, make_topic,
                                                                                producer):
    """A reader fetches partition 0 (its 1,000 records prefetched by the consumer), then the records
    are deleted from the broker, then splits of other partitions are added and one removed: partition
    0 goes on from the records already fetched, never asking the broker again for deleted offsets
    (re-assigning it would fail with an out-of-range error), and every record comes once."""
    topic = make_topic(partitions=3)
    fill(producer, topic, {0: 1000, 1: 10, 2: 10})
    reader = KafkaPartitionSplitReader(consumer_config(bootstrap, None, {}),
                                       limits=BatchLimits(max_rows=10, max_wait_ms=100))
    try:
        reader.add_splits([KafkaPartitionSplit(topic, 0, 0, 1000)])
        first: list[tuple[int, int]] = []
        deadline = time.monotonic() + 60
        while not first:
            assert time.monotonic() < deadline, "no record of partition 0 arrived"
            batch = reader.fetch().batch
            if batch is not None:
                first = list(zip(batch.column("partition").to_pylist(), batch.column("offset").to_pylist()))
        assert len(first) <= 10
        admin = AdminClient({"bootstrap.servers": bootstrap})
        for future in admin.delete_records([TopicPartition(topic, 0, 1000)]).values():
            future.result(30)

        reader.add_splits([KafkaPartitionSplit(topic, 1, 0, 10), KafkaPartitionSplit(topic, 2, 0, 10)])
        reader.remove_splits([f"{topic}-2"])
        rest = fetch_until(reader, lambda finished: {f"{topic}-0", f"{topic}-1"} <= finished)
        stats = reader.observe()["stats"]
    finally:
        reader.close()
    seen = first + rest
    assert sorted(o for p, o in seen if p == 0) == list(range(1000))
    assert sorted(o for p, o in seen if p == 1) == list(range(10))
    assert not [o for p, o in seen if p == 2]  # removed before any fetch
    assert len(seen) == len(set(seen))
    assert stats["records_refetched"] == 0


def test_splits_added_one_by_one_are_all_read_once(bootstrap, make_topic, producer):
    """Splits arriving one at a time (as partitions are discovered) each join the assignment; the
    partitions already being read are not restarted: no record comes twice."""
    count = 50
    topic = make_topic(partitions=count)
    fill(producer, topic, {p: 20 for p in range(count)})
    reader = KafkaPartitionSplitReader(consumer_config(bootstrap, None, {}),
                                       limits=BatchLimits(max_rows=7, max_wait_ms=50))
    seen: list[tuple[int, int]] = []
    finished: set[str] = set()
    try:
        for p in range(count):
            reader.add_splits([KafkaPartitionSplit(topic, p, 0, 20)])
            records = reader.fetch()
            finished.update(records.finished_splits)
            if records.batch is not None:
                seen.extend(zip(records.batch.column("partition").to_pylist(),
                                records.batch.column("offset").to_pylist()))
        seen += fetch_until(reader, lambda done: len(finished | done) == count)
        stats = reader.observe()["stats"]
    finally:
        reader.close()
    assert len(seen) == len(set(seen)) == 20 * count
    assert stats["records_refetched"] == 0
