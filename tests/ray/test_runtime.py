"""Streaming with RayRuntime: readers as Ray actors, the coordinator in the driver; checkpoints,
restore, and failover of a killed actor, on a local Ray against the real broker."""
from __future__ import annotations

import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'fastsource[ray]')")

import fastsource as fs  # noqa: E402
from fastsource.ray import RayRuntime  # noqa: E402


def fill(producer, topic: str, partitions: int, per_partition: int) -> None:
    for i in range(per_partition):
        for p in range(partitions):
            producer.produce(topic, value=b"%d-%d" % (p, i), key=b"k%d" % i, partition=p)
    producer.flush(30)


def coordinates(batch) -> list[tuple[int, int]]:
    return list(zip(batch.column("partition").to_pylist(), batch.column("offset").to_pylist()))


def source(bootstrap: str, topic: str) -> fs.KafkaSource:
    return fs.KafkaSource(bootstrap, topics=[topic], batch_limits=fs.BatchLimits(max_rows=300))


def runtime() -> RayRuntime:
    return RayRuntime(num_cpus=0.5)


def test_stream_on_ray_checkpoint_and_restore(ray_local, bootstrap, make_topic, producer, tmp_path):
    topic = make_topic(partitions=3)
    fill(producer, topic, 3, 2000)
    everything = {(p, o) for p in range(3) for o in range(2000)}
    checkpoint_dir = tmp_path / "chk"
    before: list[tuple[int, int]] = []
    with source(bootstrap, topic).open(parallelism=2, checkpoint_dir=checkpoint_dir,
                                       runtime=runtime()) as stream:
        for batch in stream:
            assert batch.schema == stream.schema
            before.extend(coordinates(batch))
            if len(before) >= 2500:
                break
        stream.checkpoint()
        assert stream.metrics()["records"] >= len(before)
        for _, batch in zip(range(3), stream):  # read past the checkpoint, then "crash"
            assert batch.num_rows > 0
    after: list[tuple[int, int]] = []
    with source(bootstrap, topic).open(parallelism=2, checkpoint_dir=checkpoint_dir,
                                       runtime=runtime()) as stream:
        assert stream.restored_checkpoint_id is not None
        for batch in stream:
            after.extend(coordinates(batch))
        assert stream.ended
    assert len(before) + len(after) == len(everything)
    assert set(before) | set(after) == everything


def test_killed_reader_actor_is_replaced_every_record_once(ray_local, bootstrap, make_topic, producer):
    topic = make_topic(partitions=2)
    fill(producer, topic, 2, 6000)
    seen: list[tuple[int, int]] = []
    with source(bootstrap, topic).open(parallelism=2, runtime=runtime()) as stream:
        for batch in stream:
            seen.extend(coordinates(batch))
            if len(seen) >= 3000:
                break
        victim = stream.readers[0]
        ray.kill(victim.actor)
        for batch in stream:
            seen.extend(coordinates(batch))
        assert stream.readers[0] is not victim, "the killed reader was not replaced"
    assert len(seen) == 12000
    assert sorted(seen) == [(p, o) for p in range(2) for o in range(6000)]


def test_dead_letters_come_back_from_the_actors(ray_local, bootstrap, make_topic, producer):
    import pyarrow as pa

    topic = make_topic(partitions=2)
    for i in range(400):
        value = b"not json %d" % i if i % 100 == 7 else b'{"n": %d}' % i
        producer.produce(topic, value=value, partition=i % 2)
    producer.flush(30)
    fmt = fs.formats.Json(schema=pa.schema([("n", pa.int64())]), errors="dead_letter")
    source = fs.KafkaSource(bootstrap, topics=[topic], value_format=fmt)
    with source.open(parallelism=2, runtime=runtime()) as stream:
        rows = sum(batch.num_rows for batch in stream)
        dead = stream.dead_letters()
    assert rows == 396
    assert sorted(dead.column("value").to_pylist()) == sorted(b"not json %d" % i for i in (7, 107, 207, 307))
    assert all("value" in reason for reason in dead.column("error").to_pylist())


def test_a_topic_recreated_since_the_checkpoint_fails_the_restore_on_ray_too(
        ray_local, bootstrap, make_topic, producer, tmp_path, recreate_topic):
    """Issue 18, item 1: the topic-id check runs in the driver's enumerator, before any split goes
    to a reader actor; with on_topic_recreated="earliest" the new topic is read from its start."""
    topic = make_topic(partitions=2)
    fill(producer, topic, 2, 100)
    with source(bootstrap, topic).open(parallelism=2, checkpoint_dir=tmp_path, runtime=runtime()) as stream:
        assert sum(batch.num_rows for batch in stream) == 200
        stream.checkpoint()
    recreate_topic(topic, partitions=2)
    fill(producer, topic, 2, 30)
    with pytest.raises(fs.TopicRecreatedError, match=f"'{topic}' was deleted and created again"):
        with source(bootstrap, topic).open(parallelism=2, checkpoint_dir=tmp_path,
                                           runtime=runtime()) as stream:
            list(stream)
    again = fs.KafkaSource(bootstrap, topics=[topic], on_topic_recreated="earliest")
    with again.open(parallelism=2, checkpoint_dir=tmp_path, runtime=runtime()) as stream:
        got = sorted(coordinates(batch) for batch in stream)
    assert sorted(pair for batch in got for pair in batch) == [(p, o) for p in range(2) for o in range(30)]


def test_schemaless_json_gives_one_type_across_reader_actors(ray_local, bootstrap, make_topic, producer):
    """Issue 18, item 4: each actor used to infer (and pin) its own type; the stream now pins one."""
    topic = make_topic(partitions=2)
    for i in range(200):
        producer.produce(topic, b'{"x": %d}' % i, partition=0)
        producer.produce(topic, b'{"x": %d.5}' % i, partition=1)
    producer.flush(30)
    src = fs.KafkaSource(bootstrap, topics=[topic], value_format=fs.formats.Json(),
                         batch_limits=fs.BatchLimits(max_rows=40))
    with src.open(parallelism=2, runtime=runtime()) as stream:
        types = {batch.schema.field("value").type for batch in stream}
    import pyarrow as pa

    assert types == {pa.struct([("x", pa.float64())])}


def test_an_outage_a_reader_actor_saw_counts_in_the_streams_health(ray_local, free_port, tmp_path):
    """Issue 19, item 4: a reader's health travels to its actor as a reporting copy (no counts), and
    what the actor's consumer saw reaches the stream's health, the one `metrics()["broker_outages"]`
    reports. Only the actor talks to the broker here (no enumerator, no admin client in the driver),
    so the outage counted can only be the one the actor saw."""
    import dataclasses
    import threading
    import time

    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    from fastsource.base.events import AddSplitEvent
    from fastsource.broker import LocalBroker
    from fastsource.kafka.admin import BrokerHealth
    from fastsource.kafka.split import KafkaPartitionSplit
    from fastsource.runtime.transport import InProcessTransport

    broker = LocalBroker(port=free_port, data_dir=tmp_path / "data")
    broker.start()
    handle = None
    try:
        admin = AdminClient({"bootstrap.servers": broker.address, "log_level": 0})
        admin.create_topics([NewTopic("outage", 1, 1)])["outage"].result(60)
        producer = Producer({"bootstrap.servers": broker.address, "log_level": 0})
        for i in range(100):
            producer.produce("outage", value=b"%d" % i)
        assert producer.flush(60) == 0
        health = BrokerHealth(broker.address, broker_timeout_ms=120_000)
        spec = dataclasses.replace(fs.KafkaSource(broker.address, topics=["outage"]).reader_spec(),
                                   health=health)
        transport = InProcessTransport()
        to_coordinator: list = []
        transport.bind_coordinator(to_coordinator.append)
        handle = runtime().create_reader(0, spec, transport, threading.Event())
        handle.start()
        transport.send_to_reader(0, AddSplitEvent((KafkaPartitionSplit("outage", 0, 0, None),)))
        rows, deadline = 0, time.monotonic() + 60
        while rows < 100 and time.monotonic() < deadline:
            output = handle.poll()
            rows += output.batch.num_rows if output.batch is not None else 0
        assert rows == 100
        assert health.outages == 0
        broker.stop()
        deadline = time.monotonic() + 60
        while health.outages == 0 and time.monotonic() < deadline:
            handle.poll()
        assert health.outages == 1 and health.down_for() > 0
    finally:
        if handle is not None:
            handle.close()
        broker.stop()
        broker.wipe()
