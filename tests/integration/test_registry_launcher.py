"""The project's own Schema Registry launcher: start, status, stop, and clear refusals."""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from fastsource import _local
from fastsource.errors import RegistryLauncherError
from fastsource.registry import CCOMPAT_PATH, LocalRegistry


def _cli(*args: str, env: dict | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).parent / "fastsource"), *args], capture_output=True,
                          text=True, timeout=timeout, env=env)


def _listening_addresses(port: int) -> set[str]:
    """The local addresses of the TCP sockets listening on `port` (Linux's /proc/net/tcp{,6}); an
    IPv4-mapped IPv6 address is given as its IPv4 address."""
    import ipaddress

    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, _, hex_port = fields[1].partition(":")
            if fields[3] != "0A" or int(hex_port, 16) != port:
                continue
            raw = bytes.fromhex(address)
            # the kernel prints each 32-bit word in host (little-endian) order
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            ip = ipaddress.ip_address(raw)
            if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
                ip = ip.ipv4_mapped
            found.add(str(ip))
    return found


def test_the_session_registry_registers_and_serves_schemas(schema_registry):
    """The fixture's registry speaks the Confluent API: a schema registered comes back by its id."""
    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

    client = SchemaRegistryClient({"url": schema_registry})
    text = '{"type": "record", "name": "Launcher", "fields": [{"name": "a", "type": "long"}]}'
    schema_id = client.register_schema("launcher-check-value", Schema(text, "AVRO"))
    assert json.loads(client.get_schema(schema_id).schema_str)["name"] == "Launcher"


def test_cli_start_status_stop_round_trip(free_port):
    """`fastsource registry start` prints the base URL last, bound to loopback (management too);
    status and stop follow it, stop --wipe leaves no run directory."""
    port = free_port
    started = _cli("registry", "start", "--port", str(port))
    try:
        assert started.returncode == 0, started.stderr
        url = started.stdout.strip().splitlines()[-1]
        assert url == f"http://127.0.0.1:{port}{CCOMPAT_PATH}"
        with urllib.request.urlopen(f"{url}/subjects", timeout=10) as response:
            assert json.load(response) == []
        for p in (port, port + 1):
            assert _listening_addresses(p) == {"127.0.0.1"}, p
        status = _cli("registry", "status", "--port", str(port))
        assert status.stdout.startswith(f"running: {url} (pid ")
        again = _cli("registry", "start", "--port", str(port))
        assert again.returncode == 0 and again.stdout.strip().splitlines()[-1] == url
    finally:
        stopped = _cli("registry", "stop", "--port", str(port), "--wipe")
    assert stopped.stdout.strip().splitlines()[0] == f"stopped {url}"
    registry = LocalRegistry(port=port)
    assert registry.pid() is None and not registry.run_dir.exists()
    assert not _local.port_open(port)
    assert _cli("registry", "status", "--port", str(port)).stdout.strip() == f"stopped (port {port})"


def test_start_on_a_port_taken_by_something_else_is_refused():
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        with pytest.raises(RegistryLauncherError, match=f"port {port} .* taken"):
            LocalRegistry(port=port).start(timeout=10)
        assert LocalRegistry(port=port).pid() is None


def test_start_without_java_21_names_what_was_looked_at(tmp_path, monkeypatch, free_port):
    """Only a Java 17 around: the start fails before anything runs, naming the Java it found."""
    jdk = tmp_path / "jdk17"
    (jdk / "bin").mkdir(parents=True)
    (jdk / "bin" / "java").write_text("#!/bin/sh\necho 'openjdk version \"17.0.15\"' >&2\n")
    (jdk / "bin" / "java").chmod(0o755)
    monkeypatch.setenv("JAVA_HOME", str(jdk))
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))
    monkeypatch.setattr(_local, "JVM_DIRS", ())
    registry = LocalRegistry(port=free_port)
    with pytest.raises(RegistryLauncherError) as raised:
        registry.start(timeout=10)
    assert f"no Java 21+ found to run Apicurio Registry" in str(raised.value)
    assert f"$JAVA_HOME {jdk / 'bin' / 'java'} (Java 17)" in str(raised.value)
    assert registry.pid() is None


def test_a_registry_that_dies_at_start_reports_its_log_tail(tmp_path, monkeypatch, free_port):
    """A JVM that exits during start-up: the error carries the exit code and the log's last lines."""
    jdk = tmp_path / "jdk21"
    (jdk / "bin").mkdir(parents=True)
    (jdk / "bin" / "java").write_text("#!/bin/sh\necho 'openjdk version \"21.0.1\"' >&2\n"
                                      "echo 'quarkus failed: boom at start' >&2\nexit 3\n")
    (jdk / "bin" / "java").chmod(0o755)
    monkeypatch.setenv("JAVA_HOME", str(jdk))
    registry = LocalRegistry(port=free_port)
    try:
        with pytest.raises(RegistryLauncherError, match=r"(?s)exited with code 3 .*log .*registry.log:\n.*boom at start"):
            registry.start(timeout=30)
        assert registry.pid() is None
    finally:
        registry.wipe()


def test_a_first_start_says_that_it_downloads_the_registry(tmp_path, free_port):
    """With an empty FASTSOURCE_HOME the registry would be fetched: a line on stderr says so first (no
    mvn on PATH here, so nothing is downloaded and the start fails with one line)."""
    env = {**os.environ, "FASTSOURCE_HOME": str(tmp_path), "PATH": str(Path(sys.executable).parent)}
    done = _cli("registry", "start", "--port", str(free_port), env=env, timeout=60)
    notice, error = done.stderr.strip().splitlines()
    assert notice.startswith("downloading Apicurio Registry 3.3.3") and "~152 MB" in notice
    assert done.returncode == 2
    assert re.search(r"`mvn` is not on PATH|no Java 21\+ found", error), error
    assert not any(tmp_path.glob("apicurio-registry-*"))


def test_cli_refuses_ports_the_registry_cannot_use():
    for port in ("70000", "0", "65535", "x"):
        done = _cli("registry", "start", "--port", port, timeout=60)
        assert done.returncode == 2, (port, done.stderr)
        assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
