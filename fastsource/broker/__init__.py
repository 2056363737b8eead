"""A real Apache Kafka broker on loopback, for the demo, the tests and the benchmarks.

Kafka's jars come from Maven Central once (a Maven `copy-dependencies` into a cache directory); the broker
runs as one combined broker+controller node in KRaft mode, PLAINTEXT on 127.0.0.1 (the controller on
the next port), and with `security=` a secured listener two ports up (SASL/SCRAM-SHA-512, TLS or mutual
TLS, see `fastsource.broker.security`). State lives under `$FASTSOURCE_HOME` (default
`~/.cache/fastsource`): `kafka-<version>/lib` for the jars, `run/<port>/` for each broker's pid, log,
properties, certificates and (unless `--data-dir` is given) data.

A local broker keeps every record whatever its timestamp (no time retention) unless a topic says
otherwise with its own `retention.ms`: records with old timestamps are what back-fills and tests write.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from fastsource._local import fetch_once, find_java, home, maven, port_open, running_pid, stop_service, tail
from fastsource.broker.security import SECURITY_MODES, SecuredListener  # noqa: F401  (re-exported)
from fastsource.errors import BrokerError

log = logging.getLogger(__name__)

KAFKA_VERSION = "4.1.1"
# The Kafka lines the test suite runs against: the default first.
TESTED_KAFKA_VERSIONS = ("4.1.1", "3.9.2")
# Below the kernel's ephemeral port range (32768-60999 on Linux), so that no outgoing connection can
# hold it for a moment; the controller listens on the next port, a secured listener on the one after.
DEFAULT_PORT = 19092
_HERE = Path(__file__).resolve().parent
_JVM_FLAGS = ["-Xmx768m", "-Xms256m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
              "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent",
              "-Djava.awt.headless=true"]
# Kafka's POM names no logging binding. 4.x logs through log4j 2; 3.x through SLF4J 1.7, bound to
# reload4j (the log4j 1 fork its distribution ships), which reads a log4j 1 properties file.
_LOG4J2 = [("org.apache.logging.log4j", a, "2.25.3")
           for a in ("log4j-slf4j-impl", "log4j-api", "log4j-core")]
_RELOAD4J = [("org.slf4j", "slf4j-reload4j", "1.7.36")]
_JAR_MB = {"4": 56, "3": 48}


def check_kafka_version(version: str) -> str:
    """`version` if the launcher can run it (an Apache Kafka release 3.9.0 or later, KRaft);
    BrokerError otherwise."""
    match = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", version)
    if match is None or (int(match[1]), int(match[2])) < (3, 9):
        raise BrokerError(f"Kafka version {version!r} cannot be launched here: the launcher runs "
                          "Apache Kafka releases 3.9.0 and later (tested: "
                          f"{', '.join(TESTED_KAFKA_VERSIONS)})")
    return version


def _uses_log4j1(version: str) -> bool:
    return version.split(".")[0] == "3"


class _BindFailed(Exception):
    """The broker lost a race for its port."""


def _kafka_lib(version: str) -> Path:
    return home() / f"kafka-{version}" / "lib"


def download_notice(version: str = KAFKA_VERSION) -> str | None:
    """What a first start is about to download (for the user to see), or None when the jars are cached."""
    lib = _kafka_lib(version)
    if (lib / f"kafka_2.13-{version}.jar").exists():
        return None
    size = _JAR_MB.get(version.split(".")[0], 56)
    return (f"downloading Apache Kafka {version} (~{size} MB of jars) from Maven Central into {lib} "
            "(first start only) ...")


def check_port(port: int) -> int:
    """`port` if the broker can listen on it and on port + 1 (its controller); BrokerError otherwise."""
    if not 1 <= port <= 65534:
        raise BrokerError(f"port {port} is out of range: the broker needs it and port + 1 (its "
                          "controller) within 1-65535")
    return port


def _pom(version: str) -> str:
    dependencies = [("org.apache.kafka", "kafka_2.13", version),
                    *(_RELOAD4J if _uses_log4j1(version) else _LOG4J2)]
    lines = "\n".join(f"    <dependency><groupId>{g}</groupId><artifactId>{a}</artifactId>"
                      f"<version>{v}</version></dependency>" for g, a, v in dependencies)
    return (_HERE / "pom.xml").read_text().replace("<!-- DEPENDENCIES -->", lines)


def _fetch_kafka(version: str, staging: Path) -> Path:
    """Kafka's runtime jars of `version` copied by Maven into `staging`/lib."""
    (staging / "pom.xml").write_text(_pom(version))
    maven(["-f", str(staging / "pom.xml"), "dependency:copy-dependencies", "-DincludeScope=runtime",
           f"-DoutputDirectory={staging / 'lib'}"], f"Apache Kafka {version}", BrokerError)
    return staging / "lib"


def kafka_classpath(version: str = KAFKA_VERSION) -> str:
    """Classpath of the Kafka broker jars of `version`, fetched with Maven into the cache on first use."""
    check_kafka_version(version)
    lib = _kafka_lib(version)
    if download_notice(version) is not None:
        log.info("downloading Apache Kafka %s from Maven Central into %s", version, lib)
        fetch_once(lib, f"Apache Kafka {version}", lambda staging: _fetch_kafka(version, staging), BrokerError)
    return f"{lib}/*"


def _logging_flag(version: str) -> str:
    if _uses_log4j1(version):
        return f"-Dlog4j.configuration=file:{_HERE / 'log4j.properties'}"
    return f"-Dlog4j2.configurationFile={_HERE / 'log4j2.properties'}"


def _answers_metadata(address: str, timeout: float, properties: dict | None = None) -> bool:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({**(properties or {}), "bootstrap.servers": address, "log_level": 0})
    try:
        return bool(admin.list_topics(timeout=timeout).brokers)
    except Exception:
        return False


@dataclass
class LocalBroker:
    """One local Kafka node: `start()`, `stop()`, `status()`; `address` is its bootstrap address.

    `kafka_version` picks the Apache Kafka release (3.9.0 or later); `security` adds a secured
    listener on `port + 2` (one of `SECURITY_MODES`) whose client properties `client_properties()`
    returns, while PLAINTEXT stays on `port` for the launcher's own use.
    """

    port: int = DEFAULT_PORT
    data_dir: Path | None = None
    kafka_version: str = KAFKA_VERSION
    security: str | None = None

    def __post_init__(self) -> None:
        check_kafka_version(self.kafka_version)
        self.secured = (SecuredListener(self.security, self.port + 2, self.run_dir / "security")
                        if self.security is not None else None)

    def client_properties(self) -> dict[str, str]:
        """librdkafka properties that reach the broker: its secured listener's (bootstrap.servers,
        security.protocol, SASL credentials, CA and client certificate files) if it has one, else
        just its PLAINTEXT bootstrap address."""
        if self.secured is None:
            return {"bootstrap.servers": self.address}
        return self.secured.client_properties()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def run_dir(self) -> Path:
        return home() / "run" / str(self.port)

    @property
    def log_file(self) -> Path:
        return self.run_dir / "broker.log"

    def _data(self) -> Path:
        if self.data_dir is not None:
            return Path(self.data_dir).resolve()
        stored = self.run_dir / "data-dir"
        return Path(stored.read_text()) if stored.exists() else self.run_dir / "data"

    def pid(self) -> int | None:
        """Pid of this broker's JVM if it is running."""
        return running_pid(self.run_dir / "broker.pid")

    def status(self) -> str:
        pid = self.pid()
        if pid is None:
            return f"stopped (port {self.port})"
        state = "running" if _answers_metadata(self.address, 5) else "starting or unresponsive"
        return f"{state}: {self.address} (pid {pid}, log {self.log_file})"

    def _ports(self) -> tuple[int, ...]:
        return (self.port, self.port + 1) + ((self.port + 2,) if self.secured else ())

    def _write_config(self, data: Path) -> Path:
        controller = self.port + 1
        listeners = [f"PLAINTEXT://127.0.0.1:{self.port}", f"CONTROLLER://127.0.0.1:{controller}"]
        protocols = ["CONTROLLER:PLAINTEXT", "PLAINTEXT:PLAINTEXT"]
        if self.secured is not None:
            listeners.append(f"SECURED://{self.secured.address}")
            protocols.append(f"SECURED:{self.secured.protocol}")
        # Kafka 3.x refuses a controller listener among a broker's advertised listeners.
        advertised = [ln for ln in listeners
                      if not (_uses_log4j1(self.kafka_version) and ln.startswith("CONTROLLER"))]
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{controller}",
            "listeners": ",".join(listeners),
            "advertised.listeners": ",".join(advertised),
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": ",".join(protocols),
            "log.dirs": str(data),
            # A development broker keeps every record whatever its timestamp; a topic's own
            # retention.ms still applies, checked every few seconds.
            "log.retention.ms": "-1",
            "log.retention.check.interval.ms": "5000",
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "4",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "num.network.threads": "2",
            "num.io.threads": "2",
            "auto.create.topics.enable": "false",
            "message.max.bytes": str(8 << 20),
        }
        if self.secured is not None:
            props.update(self.secured.prepare())
        path = self.run_dir / "server.properties"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds the TLS key
        with os.fdopen(fd, "w") as out:
            out.write("".join(f"{k}={v}\n" for k, v in props.items()))
        (self.run_dir / "broker.json").write_text(json.dumps(self._identity()))
        return path

    def _identity(self) -> dict[str, str | None]:
        return {"kafka_version": self.kafka_version, "security": self.security}

    def _check_running_matches(self) -> None:
        """A broker already running on this port must be the one asked for."""
        try:
            running = json.loads((self.run_dir / "broker.json").read_text())
        except (OSError, ValueError):
            running = {"kafka_version": KAFKA_VERSION, "security": None}
        if running != self._identity():
            raise BrokerError(
                f"the broker running on port {self.port} is Kafka {running.get('kafka_version')} "
                f"with security {running.get('security')}, not Kafka {self.kafka_version} with "
                f"security {self.security}; stop it first (fastsource broker stop --port {self.port})")

    def start(self, timeout: float = 120.0, attempts: int = 3) -> str:
        """Start the broker unless it already runs here; returns the bootstrap address.

        Ports inside the kernel's ephemeral range can be taken for a moment by an outgoing connection
        (even the broker's own, to its controller port); a start that fails to bind is retried.
        """
        for attempt in range(attempts):
            try:
                return self._start_once(timeout)
            except _BindFailed as exc:
                if attempt == attempts - 1:
                    raise BrokerError(str(exc)) from None
                log.info("broker could not bind its port, retrying: %s", exc)
                time.sleep(1.0)
        raise AssertionError("unreachable")

    def _start_once(self, timeout: float) -> str:
        check_port(self.port)
        if self.secured is not None and self.port + 2 > 65535:
            raise BrokerError(f"port {self.port} is out of range: a secured broker needs it, port + 1 "
                              "(its controller) and port + 2 (the secured listener) within 1-65535")
        if self.pid() is not None:
            self._check_running_matches()
            if _answers_metadata(self.address, 10):
                return self.address
            raise BrokerError(f"a broker process for port {self.port} exists (pid {self.pid()}) but "
                              f"does not answer; run `fastsource broker stop --port {self.port}`.\n"
                              f"{tail(self.log_file)}")
        for port in self._ports():
            if port_open(port):
                raise BrokerError(f"port {port} on 127.0.0.1 is taken by another process; "
                                  "choose another with --port")
        java = find_java(17, "run the Apache Kafka broker", BrokerError)
        classpath = kafka_classpath(self.kafka_version)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        data = self._data()
        data.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "data-dir").write_text(str(data))
        config = self._write_config(data)
        logging_flag = _logging_flag(self.kafka_version)
        if not (data / "meta.properties").exists():
            cluster_id = subprocess.run([java, "-cp", classpath, "kafka.tools.StorageTool",
                                         "random-uuid"], capture_output=True, text=True, check=True)
            formatted = subprocess.run(
                [java, logging_flag, "-cp", classpath, "kafka.tools.StorageTool", "format",
                 "-t", cluster_id.stdout.strip(), "-c", str(config), "--ignore-formatted"],
                capture_output=True, text=True)
            if formatted.returncode != 0:
                raise BrokerError(f"formatting Kafka storage in {data} failed:\n"
                                  f"{formatted.stdout}{formatted.stderr}")
        with open(self.log_file, "wb") as out:
            proc = subprocess.Popen([java, *_JVM_FLAGS, logging_flag, "-cp", classpath,
                                     "kafka.Kafka", str(config)],
                                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        (self.run_dir / "broker.pid").write_text(str(proc.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                (self.run_dir / "broker.pid").unlink(missing_ok=True)
                if "Address already in use" in tail(self.log_file, 60):
                    raise _BindFailed(f"the Kafka broker could not bind one of the ports "
                                      f"{', '.join(map(str, self._ports()))} of 127.0.0.1: address "
                                      f"already in use; log {self.log_file}")
                raise BrokerError(f"the Kafka broker exited with code {proc.returncode} during start-up; "
                                  f"log {self.log_file}:\n{tail(self.log_file)}")
            if port_open(self.port) and _answers_metadata(self.address, 2):
                if self.secured is not None:
                    self._await_secured(deadline)
                return self.address
            time.sleep(0.3)
        self.stop()
        raise BrokerError(f"the Kafka broker did not answer on {self.address} within {timeout:.0f} s; "
                          f"log {self.log_file}:\n{tail(self.log_file)}")

    def _await_secured(self, deadline: float) -> None:
        """Create the SCRAM user, then wait until the secured listener answers its own client."""
        assert self.secured is not None
        self.secured.create_user(self.address, max(1.0, deadline - time.monotonic()))
        properties = self.secured.client_properties()
        while time.monotonic() < deadline:
            if _answers_metadata(self.secured.address, 2, properties):
                return
            time.sleep(0.3)
        self.stop()
        raise BrokerError(f"the broker's {self.security} listener on {self.secured.address} did not "
                          f"answer its client properties in time; log {self.log_file}:\n"
                          f"{tail(self.log_file)}")

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop the broker (SIGTERM, then SIGKILL after `timeout`). Returns whether one was running."""
        return stop_service(self.run_dir / "broker.pid", timeout)

    def wipe(self) -> None:
        """Delete this broker's data and its run directory (pid, log, properties); it must be stopped."""
        if self.pid() is not None:
            raise BrokerError(f"stop the broker on port {self.port} before wiping its data")
        shutil.rmtree(self._data(), ignore_errors=True)
        shutil.rmtree(self.run_dir, ignore_errors=True)
