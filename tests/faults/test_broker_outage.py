"""A broker of the test's own, stopped and restarted during a read: an outage shorter than
broker_timeout_ms loses and repeats no record; a longer one fails the read with BrokerUnavailableError
naming the address, within the timeout plus a few seconds; the warnings stay countable."""
from __future__ import annotations

import collections
import logging
import socket
import threading
import time

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

import fastsource as fs
from fastsource.broker import LocalBroker

PARTITIONS = 4
# Small fetch queues keep the broker on the read's path: with fastsource's defaults a reader
# prefetches up to 200k records per consumer, and the whole test topic would be in memory before
# the broker stops.
SMALL_QUEUES = {"queued.min.messages": "2000", "max.partition.fetch.bytes": "65536"}


@pytest.fixture
def broker(free_port, tmp_path):
    assert free_port + 1 < 32768, "test brokers stay below the kernel's ephemeral port range"
    own = LocalBroker(port=free_port, data_dir=tmp_path / "data")
    own.start()
    admin = AdminClient({"bootstrap.servers": own.address, "log_level": 0})
    admin.create_topics([NewTopic("outage", PARTITIONS, 1,
                                  config={"retention.ms": "-1"})])["outage"].result(60)
    yield own
    own.stop()
    own.wipe()  # its run directory under FASTSOURCE_HOME too


def produce(address: str, start: int, count: int) -> None:
    producer = Producer({"bootstrap.servers": address, "linger.ms": 5, "log_level": 0})
    for i in range(start, start + count):
        producer.produce("outage", value=b"v" * 100, key=str(i).encode(), partition=i % PARTITIONS)
        if i % 20000 == 0:
            producer.flush(60)
    assert producer.flush(60) == 0


def restart_later(broker: LocalBroker, stopped_at: float, down_s: float) -> threading.Thread:
    def restart() -> None:
        time.sleep(max(0.0, stopped_at + down_s - time.monotonic()))
        broker.start()
    thread = threading.Thread(target=restart, daemon=True)
    thread.start()
    return thread


def assert_exactly_once(seen: collections.Counter, total: int) -> None:
    repeated = [key for key, n in seen.items() if n > 1]
    assert not repeated, f"records read twice: {repeated[:10]}"
    for partition in range(PARTITIONS):
        offsets = sorted(o for p, o in seen if p == partition)
        assert offsets == list(range(len(offsets))), f"gap in partition {partition}"
    assert sum(seen.values()) == total


def count(seen: collections.Counter, batch) -> int:
    for key in zip(batch.column("partition").to_pylist(), batch.column("offset").to_pylist()):
        seen[key] += 1
    return batch.num_rows


def read_until(stream: fs.SourceStream, seen: collections.Counter, done, within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while not done() and time.monotonic() < deadline:
        batch = stream.poll(1.0)
        if batch is not None:
            count(seen, batch)


def outage_logs(caplog) -> tuple[int, int]:
    warnings = [r for r in caplog.records if r.name == "fastsource.kafka.admin"
                and r.levelno == logging.WARNING]
    noisy = [r for r in caplog.records if r.name == "fastsource.librdkafka"
             and r.levelno >= logging.WARNING]
    return len(warnings), len(noisy)


@pytest.mark.timeout(420)
def test_a_bounded_read_waits_out_a_25_s_outage_with_default_settings(broker, caplog):
    """The broker is down 15 s plus its restart (10-30 s on the shared test machine)."""
    total = 200_000
    produce(broker.address, 0, total)
    source = fs.KafkaSource(broker.address, topics=["outage"], properties=SMALL_QUEUES,
                            batch_limits=fs.BatchLimits(max_rows=2000))
    seen: collections.Counter = collections.Counter()
    restart = None
    caplog.set_level(logging.INFO)
    with source.open(parallelism=2) as stream:
        for batch in stream:
            if count(seen, batch) and restart is None and sum(seen.values()) >= total // 4:
                stopped_at = time.monotonic()
                broker.stop()
                restart = restart_later(broker, stopped_at, 15.0)
        metrics = stream.metrics()
    restart.join(180)
    assert_exactly_once(seen, total)
    assert metrics["broker_outages"] >= 1 and metrics["broker_down_s"] > 5
    warnings, noisy = outage_logs(caplog)
    assert warnings == 2 * metrics["broker_outages"] <= 6
    assert any("answers again after" in r.getMessage() for r in caplog.records)
    assert noisy < 40


@pytest.mark.timeout(420)
def test_an_unbounded_read_waits_out_an_outage_and_reads_what_came_after(broker, caplog):
    produce(broker.address, 0, 20_000)
    source = fs.KafkaSource(broker.address, topics=["outage"], stopping_offsets=None,
                            properties=SMALL_QUEUES)
    seen: collections.Counter = collections.Counter()
    caplog.set_level(logging.INFO)
    with source.open(parallelism=2) as stream:
        read_until(stream, seen, lambda: sum(seen.values()) >= 20_000, 60)
        stopped_at = time.monotonic()
        broker.stop()
        restart = restart_later(broker, stopped_at, 20.0)
        # An idle read through the outage; metrics() answers meanwhile.
        read_until(stream, seen, lambda: not restart.is_alive() or not stream.metrics(), 240)
        produce(broker.address, 20_000, 20_000)
        read_until(stream, seen, lambda: sum(seen.values()) >= 40_000, 120)
        metrics = stream.metrics()
    assert_exactly_once(seen, 40_000)
    assert metrics["broker_outages"] >= 1
    warnings, noisy = outage_logs(caplog)
    assert warnings <= 2 * metrics["broker_outages"] <= 6
    assert noisy < 40


@pytest.mark.timeout(300)
def test_an_outage_longer_than_broker_timeout_fails_within_the_bound(broker):
    produce(broker.address, 0, 20_000)
    source = fs.KafkaSource(broker.address, topics=["outage"], stopping_offsets=None,
                            properties=SMALL_QUEUES, broker_timeout_ms=5000)
    with source.open(parallelism=2) as stream:
        assert stream.poll(60) is not None
        stopped_at = time.monotonic()
        broker.stop()
        with pytest.raises(fs.BrokerUnavailableError, match=broker.address) as failure:
            while time.monotonic() - stopped_at < 120:
                stream.poll(1.0)
        failed_after = time.monotonic() - stopped_at
    assert "broker_timeout_ms=5000" in str(failure.value)
    assert 5 <= failed_after < 5 + 12, f"failed {failed_after:.1f} s after the broker stopped"


@pytest.mark.timeout(120)
def test_a_reader_retries_a_down_broker_about_once_a_second_not_in_a_loop(broker):
    """While the broker is down, a listener on its port counts the connections a reader and its
    enumerator's admin client open: about one a second each (the reconnect backoff), not the ~100 a
    second of librdkafka's sparse connections and re-bootstraps (measured: 506 in 5 s before)."""
    produce(broker.address, 0, 1000)
    source = fs.KafkaSource(broker.address, topics=["outage"], stopping_offsets=None,
                            broker_timeout_ms=120_000)
    with source.open(parallelism=1) as stream:
        read_until(stream, collections.Counter(), lambda: False, 3)
        broker.stop()
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", broker.port))
        listener.listen(128)
        listener.settimeout(0.1)
        accepted = 0
        end = time.monotonic() + 5
        reading = threading.Thread(target=read_until, args=(stream, collections.Counter(), lambda: False, 5))
        reading.start()
        while time.monotonic() < end:
            try:
                connection, _ = listener.accept()
            except socket.timeout:
                continue
            accepted += 1
            connection.close()
        reading.join()
        listener.close()
    assert 1 <= accepted <= 30, f"{accepted} connections in 5 s"
