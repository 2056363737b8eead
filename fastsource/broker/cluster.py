"""A local Apache Kafka cluster of several KRaft nodes (each a combined broker and controller), for
fault tests that need replication: a broker can be killed while the others serve its partitions.

Each node is a `LocalBroker` (same jars, logging, run directory and start-up checks) whose properties
name its own node id and every node as a controller voter, with replication defaults of the cluster's
size. Nodes are formatted with one cluster id and started together: a node answers only once a
majority of controllers has formed the quorum.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from fastsource._local import find_java
from fastsource.broker import LocalBroker, kafka_classpath
from fastsource.errors import BrokerError


@dataclass
class ClusterNode(LocalBroker):
    """One node of a `LocalCluster`: LocalBroker's properties with the cluster's overrides."""

    overrides: dict[str, str] = field(default_factory=dict)

    def _write_config(self, data: Path) -> Path:
        path = super()._write_config(data)
        props = dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
        props.update(self.overrides)
        path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        return path

    def format(self, cluster_id: str) -> None:
        """Format this node's storage for `cluster_id` unless it is formatted already."""
        data = self._data()
        if (data / "meta.properties").exists():
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        data.mkdir(parents=True, exist_ok=True)
        config = self._write_config(data)
        java = find_java(17, "run the Apache Kafka broker", BrokerError)
        logging_flag = f"-Dlog4j2.configurationFile={Path(__file__).resolve().parent / 'log4j2.properties'}"
        formatted = subprocess.run(
            [java, logging_flag, "-cp", kafka_classpath(), "kafka.tools.StorageTool", "format",
             f"--cluster-id={cluster_id}", "-c", str(config), "--ignore-formatted"],
            capture_output=True, text=True)
        if formatted.returncode != 0:
            raise BrokerError(f"formatting Kafka storage in {data} failed:\n"
                              f"{formatted.stdout}{formatted.stderr}")


def _cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding (Kafka's Uuid form)."""
    import base64

    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


class LocalCluster:
    """`len(ports)` nodes on loopback, node i listening on `ports[i]` (its controller on the next
    port), data under `data_dir`. `start()` starts every node that is not running; `kill(i)` ends
    node i at once (SIGKILL, as a crash); `stop()` stops them all and deletes their state."""

    def __init__(self, ports: list[int], data_dir: Path, session_timeout_ms: int = 3000) -> None:
        if len(set(ports)) != len(ports) or len(ports) < 1:
            raise BrokerError(f"a cluster needs distinct ports, not {ports}")
        voters = ",".join(f"{i + 1}@127.0.0.1:{port + 1}" for i, port in enumerate(ports))
        replicas = str(len(ports))
        min_isr = str(max(1, len(ports) - 1))
        self.cluster_id = _cluster_id()
        self.nodes = [ClusterNode(port=port, data_dir=Path(data_dir) / f"node-{i + 1}", overrides={
            "node.id": str(i + 1),
            "controller.quorum.voters": voters,
            "default.replication.factor": replicas,
            "min.insync.replicas": min_isr,
            "offsets.topic.replication.factor": replicas,
            "transaction.state.log.replication.factor": replicas,
            "transaction.state.log.min.isr": min_isr,
            "share.coordinator.state.topic.replication.factor": replicas,
            "share.coordinator.state.topic.min.isr": min_isr,
            # A dead broker is fenced (its partitions get new leaders) after this long.
            "broker.session.timeout.ms": str(session_timeout_ms),
            "broker.heartbeat.interval.ms": str(max(100, session_timeout_ms // 6)),
        }) for i, port in enumerate(ports)]

    @property
    def bootstrap(self) -> str:
        return ",".join(node.address for node in self.nodes)

    def start(self, timeout: float = 180.0) -> str:
        """Start the nodes not running, together; returns the bootstrap list of all nodes."""
        for node in self.nodes:
            node.format(self.cluster_id)
        errors: list[BaseException] = []

        def run(node: ClusterNode) -> None:
            try:
                node.start(timeout=timeout)
            except BaseException as exc:  # reported below, with the node's address
                errors.append(BrokerError(f"node {node.address}: {exc}"))

        threads = [threading.Thread(target=run, args=(node,), daemon=True) for node in self.nodes
                   if node.pid() is None]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        return self.bootstrap

    def kill(self, index: int) -> None:
        """End node `index` with SIGKILL (no clean shutdown, as when a machine fails)."""
        node = self.nodes[index]
        pid = node.pid()
        if pid is None:
            return
        os.killpg(pid, signal.SIGKILL)
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass

    def stop(self) -> None:
        """Stop every node and delete its data and run directory."""
        for node in self.nodes:
            node.stop()
        for node in self.nodes:
            node.wipe()
            shutil.rmtree(node._data(), ignore_errors=True)
