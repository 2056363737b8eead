"""A real Apache Kafka broker on loopback, for the demo, the tests and the benchmarks.

Kafka's jars come from Maven Central once (a Maven `copy-dependencies` into a cache directory); the broker
runs as one combined broker+controller node in KRaft mode, PLAINTEXT on 127.0.0.1. State lives under
`$FASTSOURCE_HOME` (default `~/.cache/fastsource`): `kafka-<version>/lib` for the jars, `run/<port>/` for
each broker's pid, log, properties and (unless `--data-dir` is given) data.
"""
from __future__ import annotations

import logging
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from fastsource._local import fetch_once, find_java, home, maven, port_open, running_pid, stop_service, tail
from fastsource.errors import BrokerError

log = logging.getLogger(__name__)

KAFKA_VERSION = "4.1.1"
# Below the kernel's ephemeral port range (32768-60999 on Linux), so that no outgoing connection can
# hold it for a moment; the controller listens on the next port.
DEFAULT_PORT = 19092
_HERE = Path(__file__).resolve().parent
_JVM_FLAGS = ["-Xmx768m", "-Xms256m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
              "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent",
              "-Djava.awt.headless=true"]


class _BindFailed(Exception):
    """The broker lost a race for its port."""


def _kafka_lib() -> Path:
    return home() / f"kafka-{KAFKA_VERSION}" / "lib"


def download_notice() -> str | None:
    """What a first start is about to download (for the user to see), or None when the jars are cached."""
    lib = _kafka_lib()
    if (lib / f"kafka_2.13-{KAFKA_VERSION}.jar").exists():
        return None
    return (f"downloading Apache Kafka {KAFKA_VERSION} (~56 MB of jars) from Maven Central into {lib} "
            "(first start only) ...")


def check_port(port: int) -> int:
    """`port` if the broker can listen on it and on port + 1 (its controller); BrokerError otherwise."""
    if not 1 <= port <= 65534:
        raise BrokerError(f"port {port} is out of range: the broker needs it and port + 1 (its "
                          "controller) within 1-65535")
    return port


def _fetch_kafka(staging: Path) -> Path:
    """Kafka's runtime jars copied by Maven into `staging`/lib."""
    pom = (_HERE / "pom.xml").read_text().replace("4.1.1", KAFKA_VERSION)
    (staging / "pom.xml").write_text(pom)
    maven(["-f", str(staging / "pom.xml"), "dependency:copy-dependencies", "-DincludeScope=runtime",
           f"-DoutputDirectory={staging / 'lib'}"], f"Apache Kafka {KAFKA_VERSION}", BrokerError)
    return staging / "lib"


def kafka_classpath() -> str:
    """Classpath of the Kafka broker jars, fetched with Maven into the cache on first use."""
    lib = _kafka_lib()
    if download_notice() is not None:
        log.info("downloading Apache Kafka %s from Maven Central into %s", KAFKA_VERSION, lib)
        fetch_once(lib, f"Apache Kafka {KAFKA_VERSION}", _fetch_kafka, BrokerError)
    return f"{lib}/*"


def _answers_metadata(address: str, timeout: float) -> bool:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": address, "log_level": 0})
    try:
        return bool(admin.list_topics(timeout=timeout).brokers)
    except Exception:
        return False


@dataclass
class LocalBroker:
    """One local Kafka node: `start()`, `stop()`, `status()`; `address` is its bootstrap address."""

    port: int = DEFAULT_PORT
    data_dir: Path | None = None

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

    def _write_config(self, data: Path) -> Path:
        controller = self.port + 1
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{controller}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{controller}",
            "advertised.listeners":
                f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{controller}",
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(data),
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
        path = self.run_dir / "server.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        return path

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
        if self.pid() is not None:
            if _answers_metadata(self.address, 10):
                return self.address
            raise BrokerError(f"a broker process for port {self.port} exists (pid {self.pid()}) but "
                              f"does not answer; run `fastsource broker stop --port {self.port}`.\n"
                              f"{tail(self.log_file)}")
        for port in (self.port, self.port + 1):
            if port_open(port):
                raise BrokerError(f"port {port} on 127.0.0.1 is taken by another process; "
                                  "choose another with --port")
        java = find_java(17, "run the Apache Kafka broker", BrokerError)
        classpath = kafka_classpath()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        data = self._data()
        data.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "data-dir").write_text(str(data))
        config = self._write_config(data)
        logging_flag = f"-Dlog4j2.configurationFile={_HERE / 'log4j2.properties'}"
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
                    raise _BindFailed(f"the Kafka broker could not bind 127.0.0.1:{self.port} or "
                                      f"{self.port + 1}: address already in use; log {self.log_file}")
                raise BrokerError(f"the Kafka broker exited with code {proc.returncode} during start-up; "
                                  f"log {self.log_file}:\n{tail(self.log_file)}")
            if port_open(self.port) and _answers_metadata(self.address, 2):
                return self.address
            time.sleep(0.3)
        self.stop()
        raise BrokerError(f"the Kafka broker did not answer on {self.address} within {timeout:.0f} s; "
                          f"log {self.log_file}:\n{tail(self.log_file)}")

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop the broker (SIGTERM, then SIGKILL after `timeout`). Returns whether one was running."""
        return stop_service((self.run_dir / "broker.pid"), timeout)

    def wipe(self) -> None:
        """Delete this broker's data and its run directory (pid, log, properties); it must be stopped."""
        if self.pid() is not None:
            raise BrokerError(f"stop the broker on port {self.port} before wiping its data")
        shutil.rmtree(self._data(), ignore_errors=True)
        shutil.rmtree(self.run_dir, ignore_errors=True)
