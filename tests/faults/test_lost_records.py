"""Records deleted under a running reader: one OffsetOutOfRangeError names every partition of the
reader that lost data, with the offset it now starts at, not only the first one librdkafka reports."""
from __future__ import annotations

import time

import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient

import fastsource as fs
from fastsource.kafka.reader.split_reader import KafkaPartitionSplitReader, consumer_config
from fastsource.kafka.split import KafkaPartitionSplit


def test_every_partition_that_lost_records_is_named(bootstrap, make_topic, producer):
    topic = make_topic(partitions=3)
    for i in range(30):
        producer.produce(topic, b"x", partition=i % 3)
    producer.flush()
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.delete_records([TopicPartition(topic, 0, 5),
                                        TopicPartition(topic, 2, 7)]).values():
        future.result(30)
    reader = KafkaPartitionSplitReader(consumer_config(bootstrap, None, {}))
    try:
        reader.add_splits([KafkaPartitionSplit(topic, p, 0, None) for p in range(3)])
        deadline = time.monotonic() + 60
        with pytest.raises(fs.OffsetOutOfRangeError) as info:
            while time.monotonic() < deadline:
                reader.fetch()
    finally:
        reader.close()
    message = str(info.value)
    assert "in 2 partition(s)" in message
    assert f"{topic}[0] at offset 0 (the partition now starts at offset 5 and ends at 10)" in message
    assert f"{topic}[2] at offset 0 (the partition now starts at offset 7 and ends at 10)" in message
    assert f"{topic}[1]" not in message
