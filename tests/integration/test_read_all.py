"""End-to-end reads through enumerator -> reader -> compiled fetch, compared with confluent-kafka."""
from __future__ import annotations

import time

import pyarrow as pa
import pytest
from confluent_kafka import Consumer, TopicPartition

import fastsource as fs


def consume_all_with_confluent(bootstrap: str, topic: str, partitions: int) -> list[dict]:
    """The reference: every record of `topic`, read by confluent-kafka's own consumer."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "reference",
                         "enable.auto.commit": False, "enable.partition.eof": True})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    rows, eof = [], set()
    deadline = time.monotonic() + 60
    while len(eof) < partitions and time.monotonic() < deadline:
        m = consumer.poll(1.0)
        if m is None:
            continue
        if m.error():
            if m.error().code() == -191:
                eof.add(m.partition())
                continue
            raise RuntimeError(m.error())
        ts_type, ts = m.timestamp()
        rows.append({"topic": m.topic(), "partition": m.partition(), "offset": m.offset(),
                     "timestamp": ts, "timestamp_type": ts_type, "key": m.key(), "value": m.value(),
                     "headers": [(k, v) for k, v in (m.headers() or [])]})
    consumer.close()
    return rows


def as_rows(table: pa.Table) -> list[dict]:
    rows = []
    for r in table.to_pylist():
        ts = r["timestamp"]
        rows.append({"topic": r["topic"], "partition": r["partition"], "offset": r["offset"],
                     "timestamp": int(ts.timestamp() * 1000) if ts is not None else None,
                     "timestamp_type": r["timestamp_type"], "key": r["key"], "value": r["value"],
                     "headers": [(h["key"], h["value"]) for h in r.get("headers") or []]})
    return rows


def key_of(row: dict) -> tuple:
    return (row["partition"], row["offset"])


@pytest.mark.kfake
def test_read_all_matches_confluent_kafka(bootstrap, make_topic, producer):
    """Keys, values, offsets, timestamps, headers, null/empty keys and values, binary bytes and
    several partitions come out exactly as confluent-kafka reads them."""
    topic = make_topic(partitions=5)
    for i in range(5000):
        key = None if i % 7 == 0 else (b"" if i % 11 == 0 else f"k{i}".encode())
        value = None if i % 13 == 0 else (b"" if i % 17 == 0 else bytes([i % 256, 0, 10]) * (i % 50))
        headers = [("h", f"{i}".encode()), ("n", None)] if i % 5 == 0 else None
        producer.produce(topic, value=value, key=key, partition=i % 5, headers=headers,
                         timestamp=1_700_000_000_000 + i)
    producer.produce(topic, value=b"x" * (1 << 20), key=b"big", partition=0)
    producer.flush()

    table = fs.KafkaSource(bootstrap, topics=[topic], include_headers=True).read_all()
    expected = sorted(consume_all_with_confluent(bootstrap, topic, 5), key=key_of)
    got = sorted(as_rows(table), key=key_of)

    assert table.num_rows == 5001
    assert table.schema.names == ["topic", "partition", "offset", "timestamp", "timestamp_type",
                                  "key", "value", "headers"]
    assert got == expected
    assert table.column("key").null_count == len([i for i in range(5000) if i % 7 == 0])
    assert any(r["value"] == b"" for r in got) and any(r["value"] is None for r in got)


def test_read_all_without_headers_has_contract_columns(bootstrap, make_topic, producer):
    topic = make_topic(partitions=2)
    for i in range(10):
        producer.produce(topic, value=f"v{i}".encode(), partition=i % 2)
    producer.flush()
    table = fs.KafkaSource(bootstrap, topics=[topic]).read_all()
    assert table.schema.names == ["topic", "partition", "offset", "timestamp", "timestamp_type",
                                  "key", "value"]
    assert table.schema.field("partition").type == pa.int32()
    assert table.schema.field("offset").type == pa.int64()
    assert table.schema.field("timestamp").type == pa.timestamp("ms", tz="UTC")
    assert table.schema.field("timestamp_type").type == pa.int8()
    assert sorted(table.column("value").to_pylist()) == sorted(f"v{i}".encode() for i in range(10))


def test_empty_topic_reads_to_an_empty_table(bootstrap, make_topic):
    topic = make_topic(partitions=3)
    table = fs.KafkaSource(bootstrap, topics=[topic]).read_all()
    assert table.num_rows == 0
    assert table.schema.names[:3] == ["topic", "partition", "offset"]


@pytest.mark.kfake
def test_unknown_topic_is_named(bootstrap):
    with pytest.raises(fs.UnknownTopicError, match="no-such-topic-xyz"):
        fs.KafkaSource(bootstrap, topics=["no-such-topic-xyz"]).read_all()


def test_unreachable_bootstrap_fails_in_bounded_time():
    started = time.monotonic()
    with pytest.raises(fs.BrokerUnavailableError, match="127.0.0.1:9"):
        fs.KafkaSource("127.0.0.1:9", topics=["t"], request_timeout_s=3).read_all()
    assert time.monotonic() - started < 15
