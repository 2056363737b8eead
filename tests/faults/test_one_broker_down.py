"""One dead broker of three is a leader change, not an outage: against a real 3-node KRaft cluster
(replication factor 3), a broker killed with SIGKILL during a bounded read with
`broker_timeout_ms=5000` leaves the read complete, every record once, `broker_outages` 0; killing
every broker still fails the read with `BrokerUnavailableError`, as documented."""
from __future__ import annotations

import uuid

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

import fastsource as fs

RECORDS = 12_000
PARTITIONS = 6


def replicated_topic(bootstrap: str) -> str:
    """A topic of PARTITIONS partitions, 3 replicas each, holding RECORDS records "0".."RECORDS-1"
    in small producer batches (so that a read needs many fetches)."""
    topic = f"rf3-{uuid.uuid4().hex[:10]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, PARTITIONS, 3, config={"retention.ms": "-1"})])[topic].result(60)
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0,
                         "batch.num.messages": 20})
    for i in range(RECORDS):
        producer.produce(topic, str(i).encode(), partition=i % PARTITIONS)
        producer.poll(0)
    assert producer.flush(120) == 0
    return topic


def slow_source(bootstrap: str, topic: str) -> fs.KafkaSource:
    """A bounded source fetching a few records per request, so that the read spans the kill."""
    return fs.KafkaSource(
        bootstrap, topics=[topic], stopping_offsets=fs.OffsetsInitializer.latest(),
        broker_timeout_ms=5000, value_format=fs.formats.String(),
        batch_limits=fs.BatchLimits(max_rows=100),
        properties={"queued.min.messages": "1", "max.partition.fetch.bytes": "1024",
                    "fetch.max.bytes": "4096", "message.max.bytes": "4096"})


def leaders(bootstrap: str, topic: str) -> dict[int, int]:
    metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=30)
    return {p: m.leader for p, m in metadata.topics[topic].partitions.items()}


@pytest.mark.parametrize("kill_at", ["after the first batch", "before the first batch"])
def test_one_broker_killed_during_a_read_is_not_an_outage(kafka_cluster, kill_at):
    cluster = kafka_cluster
    """The read completes with every record exactly once and counts no outage: the killed broker's
    partitions are read from their new leaders (and their offsets resolved there)."""
    bootstrap = cluster.start()
    topic = replicated_topic(bootstrap)
    victim = next(i for i, node in enumerate(cluster.nodes)
                  if int(node.overrides["node.id"]) in set(leaders(bootstrap, topic).values()))
    values: list[str] = []
    with slow_source(bootstrap, topic).open(parallelism=2) as stream:
        if kill_at == "before the first batch":
            cluster.kill(victim)
        for batch in stream:
            values.extend(batch.column("value").to_pylist())
            if cluster.nodes[victim].pid() is not None:
                cluster.kill(victim)
        metrics = stream.metrics()
    assert cluster.nodes[victim].pid() is None
    assert len(values) == RECORDS
    assert sorted(map(int, values)) == list(range(RECORDS))
    assert metrics["broker_outages"] == 0


def test_every_broker_killed_fails_the_read(kafka_cluster):
    cluster = kafka_cluster
    """With no broker left the read fails with BrokerUnavailableError (after broker_timeout_ms)."""
    bootstrap = cluster.start()
    topic = replicated_topic(bootstrap)
    with pytest.raises(fs.BrokerUnavailableError, match="no Kafka broker answered"):
        with slow_source(bootstrap, topic).open(parallelism=2) as stream:
            for _ in stream:
                if any(node.pid() is not None for node in cluster.nodes):
                    for index in range(len(cluster.nodes)):
                        cluster.kill(index)
