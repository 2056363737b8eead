"""The compiled split reader and the formats on the real broker: stopping offsets, transactions,
wake-up, data loss, decode errors and dead letters."""
from __future__ import annotations

import logging
import threading
import time

import pyarrow as pa
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

import fastsource as fs
from fastsource.kafka.split import KafkaPartitionSplit
from fastsource.kafka.reader.split_reader import KafkaPartitionSplitReader, consumer_config


def fill(producer, topic, values, partition=0):
    for v in values:
        producer.produce(topic, value=v, partition=partition)
    producer.flush()


def split_reader(bootstrap, **properties):
    return KafkaPartitionSplitReader(consumer_config(bootstrap, None, properties))


def drain(reader, expect_finished, timeout=30):
    """Fetch until the given splits finished; returns (rows, finished ids)."""
    rows, finished = [], []
    deadline = time.monotonic() + timeout
    while set(finished) != set(expect_finished):
        assert time.monotonic() < deadline, f"splits did not finish: {finished}"
        result = reader.fetch()
        if result.batch is not None:
            rows += result.batch.to_pylist()
        finished += result.finished_splits
    return rows, finished


@pytest.mark.kfake
def test_stopping_offset_is_exclusive_and_finishes_the_split(bootstrap, make_topic, producer):
    topic = make_topic()
    fill(producer, topic, [str(i).encode() for i in range(30)])
    reader = split_reader(bootstrap)
    try:
        reader.add_splits([KafkaPartitionSplit(topic, 0, 5, 12)])
        rows, _ = drain(reader, [f"{topic}-0"])
    finally:
        reader.close()
    assert [r["offset"] for r in rows] == list(range(5, 12))


def test_split_with_start_at_or_past_stop_finishes_at_once(bootstrap, make_topic, producer):
    topic = make_topic()
    fill(producer, topic, [b"x"] * 3)
    reader = split_reader(bootstrap)
    try:
        reader.add_splits([KafkaPartitionSplit(topic, 0, 3, 3)])
        result = reader.fetch()
    finally:
        reader.close()
    assert result.batch is None and result.finished_splits == [f"{topic}-0"]


def produce_transactions(bootstrap, topic):
    """Three transactions on partition 0: c1, c2 committed (offsets 0-1, marker 2); a1-a3 aborted
    (3-5, marker 6); c3 committed (7, marker 8)."""
    tx = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"tx-{topic}"})
    tx.init_transactions(30)
    for commit, values in ((True, [b"c1", b"c2"]), (False, [b"a1", b"a2", b"a3"]), (True, [b"c3"])):
        tx.begin_transaction()
        for v in values:
            tx.produce(topic, v, partition=0)
        tx.flush()
        (tx.commit_transaction if commit else tx.abort_transaction)(30)


@pytest.mark.kfake
def test_read_committed_skips_aborted_records_and_still_finishes(bootstrap, make_topic):
    topic = make_topic()
    produce_transactions(bootstrap, topic)
    committed = fs.KafkaSource(bootstrap, topics=[topic],
                               properties={"isolation.level": "read_committed"}).read_all()
    everything = fs.KafkaSource(bootstrap, topics=[topic],
                                properties={"isolation.level": "read_uncommitted"}).read_all()
    assert committed.column("value").to_pylist() == [b"c1", b"c2", b"c3"]
    assert sorted(everything.column("value").to_pylist()) == [b"a1", b"a2", b"a3", b"c1", b"c2", b"c3"]


def test_wake_up_interrupts_a_blocking_fetch_promptly(bootstrap, make_topic):
    topic = make_topic()
    reader = KafkaPartitionSplitReader(consumer_config(bootstrap, None, {}),
                                       limits=fs.BatchLimits(max_wait_ms=20_000))
    try:
        reader.add_splits([KafkaPartitionSplit(topic, 0, 0, None)])
        # The first fetch connects; on the empty partition it too would wait the whole max_wait.
        first = threading.Timer(1.0, reader.wake_up)
        first.start()
        reader.fetch()
        first.join()
        timer = threading.Timer(0.3, reader.wake_up)
        started = time.monotonic()
        timer.start()
        result = reader.fetch()
        elapsed = time.monotonic() - started
    finally:
        reader.close()
    assert result.batch is None
    assert elapsed < 5, f"wake_up took {elapsed:.1f} s"


def test_batches_cut_short_by_wake_up_lose_and_repeat_nothing(bootstrap, make_topic):
    # A wake-up ends a fetch between two records of the array librdkafka handed over; the rest of
    # that array goes into the next batch, whose buffers are new. Every record must come out once,
    # in order, with its own key and value.
    topic = make_topic()
    count = 100_000
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    for i in range(count):
        producer.produce(topic, key=b"k%d" % i, value=b"v%d" % i if i % 7 else None, partition=0)
        if i % 10_000 == 0:
            producer.poll(0)
    producer.flush()
    reader = split_reader(bootstrap)
    done = threading.Event()

    def keep_waking() -> None:
        while not done.is_set():
            reader.wake_up()
            time.sleep(0)  # lets the fetching thread take the GIL between two fetches

    waker = threading.Thread(target=keep_waking)
    batches = []
    try:
        reader.add_splits([KafkaPartitionSplit(topic, 0, 0, count)])
        waker.start()
        deadline = time.monotonic() + 60
        finished = []
        while not finished:
            assert time.monotonic() < deadline, "the split did not finish"
            result = reader.fetch()
            if result.batch is not None:
                batches.append(result.batch)
            finished = result.finished_splits
    finally:
        done.set()
        waker.join()
        reader.close()
    table = pa.Table.from_batches(batches)
    assert table.column("offset").to_pylist() == list(range(count))
    assert table.column("key").to_pylist() == [b"k%d" % i for i in range(count)]
    assert table.column("value").to_pylist() == [b"v%d" % i if i % 7 else None for i in range(count)]
    # Unwoken, 100,000 records come in two or three batches; the wake-ups (timed by the scheduler,
    # 7 to 110 batches in trials) end most batches in the middle of an array.
    assert len(batches) > 3, "the wake-ups did not cut the read into batches"


@pytest.mark.kfake
def test_transaction_markers_take_offsets_and_aborted_records_are_skipped(bootstrap, make_topic):
    """Each commit or abort marker takes an offset; read_committed hands out the committed records at
    their own offsets, and the read ends at the partition's end past the last marker."""
    topic = make_topic()
    produce_transactions(bootstrap, topic)
    table = fs.KafkaSource(bootstrap, topics=[topic]).read_all()  # read_committed by default
    assert table.column("offset").to_pylist() == [0, 1, 7]
    assert table.column("value").to_pylist() == [b"c1", b"c2", b"c3"]
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": topic})
    try:
        assert consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (0, 9)
    finally:
        consumer.close()


@pytest.mark.kfake
def test_deleted_records_are_a_data_loss_error_naming_the_offset(bootstrap, make_topic, producer):
    from confluent_kafka.admin import AdminClient

    topic = make_topic()
    fill(producer, topic, [b"x"] * 20)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.delete_records([TopicPartition(topic, 0, 10)])[TopicPartition(topic, 0, 10)].result()
    reader = split_reader(bootstrap)
    try:
        reader.add_splits([KafkaPartitionSplit(topic, 0, 2, None)])
        with pytest.raises(fs.OffsetOutOfRangeError) as info:
            drain(reader, ["never"], timeout=30)
    finally:
        reader.close()
    assert info.value.topic == topic and info.value.partition == 0
    assert topic in str(info.value) and "data loss" in str(info.value)


def test_out_of_range_start_offsets_are_refused_without_a_reset(bootstrap, make_topic, producer):
    topic = make_topic()
    fill(producer, topic, [b"x"] * 5)
    source = fs.KafkaSource(bootstrap, topics=[topic],
                            starting_offsets=fs.OffsetsInitializer.offsets({(topic, 0): 99}, reset=None))
    with pytest.raises(fs.OffsetOutOfRangeError, match="99"):
        source.read_all()


def test_invalid_utf8_names_topic_partition_and_offset(bootstrap, make_topic, producer):
    topic = make_topic()
    fill(producer, topic, [b"ok", b"ok", b"\xff bad", b"ok"])
    with pytest.raises(fs.DecodeError) as info:
        fs.KafkaSource(bootstrap, topics=[topic], value_format=fs.formats.String()).read_all()
    assert (info.value.topic, info.value.partition, info.value.offset) == (topic, 0, 2)


def test_dead_letters_keep_undecodable_records_raw_and_lose_nothing(bootstrap, make_topic, producer):
    topic = make_topic(partitions=2)
    good = [f'{{"n": {i}, "text": "line\\nbreak"}}'.encode() for i in range(40)]
    bad = [b'{"n": ', b"not json", b'{"n": "x"}']
    for i, value in enumerate(good):
        producer.produce(topic, value=value, partition=i % 2)
    for value in bad:
        producer.produce(topic, value=value, partition=1)
    producer.flush()
    schema = pa.schema([("n", pa.int64()), ("text", pa.string())])
    source = fs.KafkaSource(bootstrap, topics=[topic],
                            value_format=fs.formats.Json(schema, errors="dead_letter"))
    with source.open() as stream:
        table = pa.Table.from_batches(list(stream), schema=stream.schema)
        dead = stream.dead_letters()
    assert sorted(r["n"] for r in table.column("value").to_pylist()) == list(range(40))
    assert table.column("value").to_pylist()[0]["text"] == "line\nbreak"
    assert sorted(dead.column("value").to_pylist()) == sorted(bad)
    assert set(dead.column("partition").to_pylist()) == {1}
    assert all("value: invalid JSON" in e for e in dead.column("error").to_pylist())
    assert table.num_rows + dead.num_rows == len(good) + len(bad)


def test_large_values_and_many_partitions(bootstrap, make_topic):
    topic = make_topic(partitions=12)
    big = Producer({"bootstrap.servers": bootstrap, "message.max.bytes": 4 << 20, "linger.ms": 5})
    for p in range(12):
        big.produce(topic, value=bytes([p]) * (1 << 20), partition=p)
        big.produce(topic, value=b"small", partition=p)
    big.flush()
    table = fs.KafkaSource(bootstrap, topics=[topic]).read_all()
    sizes = sorted(len(v) for v in table.column("value").to_pylist())
    assert sizes == [5] * 12 + [1 << 20] * 12


def test_a_record_batch_larger_than_the_fetch_limits_is_reported_not_skipped(bootstrap, make_topic,
                                                                              caplog, monkeypatch):
    from fastsource.kafka.librdkafka_log import repeated_lines

    # librdkafka's lines are shown once a minute per process: this test's line must not count as a
    # repeat of the same test's against another broker a moment ago.
    monkeypatch.setattr(repeated_lines, "_seen", {})
    topic = make_topic(**{"max.message.bytes": str(8 << 20)})
    big = Producer({"bootstrap.servers": bootstrap, "message.max.bytes": 8 << 20})
    for value in (b"small", b"x" * (3 << 20), b"after"):  # one record batch each
        big.produce(topic, value=value, partition=0)
        big.flush(30)
    limits = {"receive.message.max.bytes": str(1 << 20), "fetch.max.bytes": str(512 << 10),
              "max.partition.fetch.bytes": str(256 << 10), "message.max.bytes": str(256 << 10)}
    source = fs.KafkaSource(bootstrap, topics=[topic], properties=limits)
    offsets = []
    started = time.monotonic()
    with pytest.raises(fs.RecordTooLargeError) as info:
        with source.open() as stream:
            for batch in stream:
                offsets += batch.column("offset").to_pylist()
    assert time.monotonic() - started < 30
    assert offsets == [0]                                  # what came before is delivered
    assert (info.value.topic, info.value.partition, info.value.offset) == (topic, 0, 1)
    assert "Invalid response size" in str(info.value)             # librdkafka's words are kept
    # librdkafka's own report of the failed receive reaches `logging`, not stderr
    assert any(r.name == "fastsource.librdkafka" and r.levelno >= logging.ERROR
               and "receive.message.max.bytes" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("missing", ["partition", "topic"])
def test_a_split_the_consumer_metadata_lacks_waits_and_reads_from_its_first_record(
        bootstrap, make_topic, missing):
    """A split assigned before the consumer's metadata lists its partition (a partition or topic
    created a moment ago, or a restarting broker) must not end: librdkafka reports the partition
    unknown, and only the enumerator may decide that it was deleted."""
    from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic
    from tests.integration.test_streaming import produce_acknowledged

    admin = AdminClient({"bootstrap.servers": bootstrap})
    if missing == "partition":
        topic = make_topic(partitions=1)
    else:
        topic = make_topic(partitions=1) + "-later"  # a unique name, created below
    reader = split_reader(bootstrap)
    rows, finished = [], []
    try:
        reader.add_splits([KafkaPartitionSplit(topic, 1 if missing == "partition" else 0, 0, None)])
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            finished += reader.fetch().finished_splits
        if missing == "partition":
            admin.create_partitions([NewPartitions(topic, 2)])[topic].result()
        else:
            admin.create_topics([NewTopic(topic, 1, 1)])[topic].result()
        produce_acknowledged(bootstrap, topic, b"first", 1 if missing == "partition" else 0)
        deadline = time.monotonic() + 60
        while not rows:
            assert time.monotonic() < deadline, f"the split never read its record (finished: {finished})"
            result = reader.fetch()
            finished += result.finished_splits
            if result.batch is not None:
                rows += result.batch.to_pylist()
    finally:
        reader.close()
        if missing == "topic":
            admin.delete_topics([topic])
    assert finished == []
    assert [(r["offset"], r["value"]) for r in rows] == [(0, b"first")]
