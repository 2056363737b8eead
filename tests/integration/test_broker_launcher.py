"""The project's own broker launcher: idempotent start, status, and clear refusals."""
from __future__ import annotations

import socket

import pytest

from fastsource.broker import LocalBroker
from fastsource.errors import BrokerError


def test_start_on_a_running_port_returns_the_address(bootstrap):
    if not bootstrap.startswith("127.0.0.1:"):
        pytest.skip("bring-your-own cluster")
    port = int(bootstrap.rsplit(":", 1)[1])
    broker = LocalBroker(port=port)
    assert broker.pid() is not None
    assert broker.start(timeout=30) == bootstrap
    assert broker.status().startswith("running")


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
