"""The project's own broker launcher: idempotent start, status, and clear refusals."""
from __future__ import annotations

import socket

import pytest

from fastsource.broker import TESTED_KAFKA_VERSIONS, LocalBroker
from fastsource.errors import BrokerError


def test_start_on_a_running_port_returns_the_address(bootstrap, local_broker):
    broker = LocalBroker(port=local_broker.port, kafka_version=local_broker.kafka_version)
    assert broker.pid() is not None
    assert broker.start(timeout=30) == bootstrap
    assert broker.status().startswith("running")


def test_start_on_a_port_running_another_kafka_or_security_is_refused(local_broker):
    """Asking for another Kafka version or a secured listener where a broker already runs names what
    runs there instead of returning an address that is not what was asked for."""
    other = next(v for v in TESTED_KAFKA_VERSIONS if v != local_broker.kafka_version)
    with pytest.raises(BrokerError, match=f"is Kafka {local_broker.kafka_version} with security None"):
        LocalBroker(port=local_broker.port, kafka_version=other).start(timeout=30)
    with pytest.raises(BrokerError, match="not Kafka .* with security ssl"):
        LocalBroker(port=local_broker.port, kafka_version=local_broker.kafka_version,
                    security="ssl").start(timeout=30)


def test_start_on_a_port_taken_by_something_else_is_refused(tmp_path):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        with pytest.raises(BrokerError, match=f"port {port} .* taken"):
            LocalBroker(port=port, data_dir=tmp_path).start(timeout=10)


def test_status_of_a_stopped_port():
    assert LocalBroker(port=1).status() == "stopped (port 1)"


def test_cli_start_status_stop_round_trip(tmp_path, free_port):
    """`fastsource broker start` prints the bootstrap address last; status and stop follow it."""
    import subprocess
    import sys
    from pathlib import Path

    port = free_port
    cli = [str(Path(sys.executable).parent / "fastsource"), "broker"]
    started = subprocess.run(cli + ["start", "--port", str(port), "--data-dir", str(tmp_path)],
                             capture_output=True, text=True, timeout=180, cwd=tmp_path)
    try:
        assert started.returncode == 0, started.stderr
        assert started.stdout.strip().splitlines()[-1] == f"127.0.0.1:{port}"
        status = subprocess.run(cli + ["status", "--port", str(port)], capture_output=True, text=True,
                                cwd=tmp_path)
        assert status.stdout.startswith("running")
    finally:
        stopped = subprocess.run(cli + ["stop", "--port", str(port), "--wipe"], capture_output=True,
                                 text=True, cwd=tmp_path)
    assert stopped.stdout.strip().splitlines()[0] == f"stopped 127.0.0.1:{port}"
    assert LocalBroker(port=port).pid() is None
    assert not LocalBroker(port=port).run_dir.exists() and not (tmp_path / "meta.properties").exists()


def _cli(*args: str, env: dict | None = None, timeout: float = 60):
    import subprocess
    import sys
    from pathlib import Path

    return subprocess.run([str(Path(sys.executable).parent / "fastsource"), *args], capture_output=True,
                          text=True, timeout=timeout, env=env)


def test_cli_refuses_ports_the_broker_cannot_use():
    for port in ("70000", "0", "65535", "x"):
        done = _cli("broker", "start", "--port", port)
        assert done.returncode == 2, (port, done.stderr)
        assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_a_first_start_says_that_it_downloads_kafka(tmp_path, free_port):
    """With an empty FASTSOURCE_HOME the jars would be fetched: a line on stderr says so first (no
    mvn on PATH here, so nothing is downloaded and the start fails with one line)."""
    import os
    import re
    import sys
    from pathlib import Path

    env = {**os.environ, "FASTSOURCE_HOME": str(tmp_path), "PATH": str(Path(sys.executable).parent)}
    done = _cli("broker", "start", "--port", str(free_port), env=env)
    notice, error = done.stderr.strip().splitlines()
    assert notice.startswith("downloading Apache Kafka") and "~56 MB" in notice
    assert done.returncode == 2
    assert re.search(r"`mvn` is not on PATH|no Java 17\+ found", error), error
    assert not any(tmp_path.glob("kafka-*/*"))


def test_bench_help_speaks_of_the_installed_command():
    done = _cli("bench", "--help")
    assert done.returncode == 0 and "fastsource bench --full" in done.stdout


def test_a_back_dated_record_survives_a_segment_roll(local_broker):
    """The launcher's broker keeps records whatever their timestamp (issue 18 item 17): a topic
    without its own retention.ms keeps 1,000 records stamped 30 days ago after their segment rolled,
    while a topic told `retention.ms` = 7 days loses them at the broker's next retention check (which
    is what shows that a check ran)."""
    import time
    import uuid

    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    import fastsource as fs

    admin = AdminClient({"bootstrap.servers": local_broker.address, "log_level": 0})
    kept, told = f"kept-{uuid.uuid4().hex[:8]}", f"told-{uuid.uuid4().hex[:8]}"
    day_ms = 86_400_000
    configs = {kept: {"segment.ms": str(day_ms)},
               told: {"segment.ms": str(day_ms), "retention.ms": str(7 * day_ms)}}
    for future in admin.create_topics([NewTopic(t, 1, 1, config=c) for t, c in configs.items()]).values():
        future.result(60)
    try:
        old = int(time.time() * 1000) - 30 * day_ms
        producer = Producer({"bootstrap.servers": local_broker.address, "log_level": 0})
        for topic in configs:
            for i in range(1000):
                producer.produce(topic, value=b"old-%d" % i, timestamp=old + i)
            assert producer.flush(30) == 0
            producer.produce(topic, value=b"now")  # 30 days newer than the segment: it rolls
            assert producer.flush(30) == 0

        def earliest(topic: str) -> int:
            return fs.KafkaSource(local_broker.address, topics=[topic]).admin().list_offsets(
                [(topic, 0)], "earliest")[(topic, 0)]

        deadline = time.monotonic() + 120
        while earliest(told) == 0 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert earliest(told) == 1000, "the broker's retention check did not run within 120 s"
        assert earliest(kept) == 0
        table = fs.KafkaSource(local_broker.address, topics=[kept]).read_all()
        assert table.column("value").to_pylist() == [b"old-%d" % i for i in range(1000)] + [b"now"]
    finally:
        for future in admin.delete_topics(list(configs)).values():
            future.result(60)
