"""franz-go's kfake, an independent Kafka implementation in Go, as a 3-broker cluster on loopback: a
second implementation for the integration tests, and a broker that stages protocol faults on demand.

The launcher (`kfake-go/main.go`, pinned to franz-go v1.22.3 by its `go.mod`/`go.sum`) is built with
`go build` on first use into `$FASTSOURCE_HOME/kfake/`, under a name carrying a hash of its sources, so
an edited launcher is rebuilt and an unchanged one never is. The process serves until its stdin closes;
`KfakeCluster` talks to it over that pipe (one JSON command a line, one JSON answer a line; the commands
are documented in `main.go`).
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import queue
import random
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Optional, Sequence

from fastsource._local import home, require, tail
from fastsource.broker import _answers_metadata
from fastsource.errors import BrokerError

log = logging.getLogger(__name__)

SOURCE_DIR = Path(__file__).resolve().parent / "kfake-go"
SOURCE_FILES = ("main.go", "go.mod", "go.sum")


def _source_digest() -> str:
    digest = hashlib.sha256()
    for name in SOURCE_FILES:
        digest.update(name.encode() + b"\0" + (SOURCE_DIR / name).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def kfake_binary(timeout: float = 900.0) -> Path:
    """The kfake launcher's executable, built with `go build` (modules from the Go module proxy) the
    first time this source is used; concurrent first uses build it once."""
    cache = home() / "kfake"
    target = cache / f"fastsource-kfake-{_source_digest()}"
    if target.exists():
        return target
    go = require("go", "build franz-go's kfake (Go 1.26 or later, https://go.dev/dl/)", BrokerError)
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.exists():
            return target
        staging = Path(tempfile.mkdtemp(prefix="build-", dir=cache))
        try:
            for name in SOURCE_FILES:
                shutil.copyfile(SOURCE_DIR / name, staging / name)
            log.info("building franz-go's kfake into %s (first use only, about a minute)", target)
            started = time.monotonic()
            try:
                result = subprocess.run([go, "build", "-mod=readonly", "-trimpath", "-o", "kfake", "."],
                                        cwd=staging, capture_output=True, text=True, timeout=timeout)
            except subprocess.TimeoutExpired:
                raise BrokerError(f"`go build` of franz-go's kfake took longer than {timeout:.0f} s "
                                  f"(in {staging})") from None
            if result.returncode != 0:
                raise BrokerError(f"`go build` of franz-go's kfake failed (exit {result.returncode}); "
                                  "it needs Go 1.26+ and the Go module proxy (GOPROXY):\n"
                                  f"{(result.stdout + result.stderr)[-3000:]}")
            os.replace(staging / "kfake", target)
            log.info("built franz-go's kfake in %.0f s", time.monotonic() - started)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def free_ports(count: int) -> list[int]:
    """`count` distinct ports free on 127.0.0.1, below the kernel's ephemeral range (32768+) so that no
    outgoing connection can take one while the cluster starts."""
    ports: list[int] = []
    for _ in range(500):
        port = random.randrange(20000, 32000)
        if port in ports:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        ports.append(port)
        if len(ports) == count:
            return ports
    raise BrokerError(f"found no {count} free ports on 127.0.0.1 between 20000 and 32000")


# As the project's Kafka launcher sets it: tests produce records of a few MiB.
DEFAULT_CONFIGS = {"message.max.bytes": str(8 << 20)}


class KfakeCluster:
    """A kfake cluster of `brokers` brokers on loopback: `start()` returns its bootstrap address,
    `stop()` ends it; the other methods stage faults (see `kfake-go/main.go` for their semantics)."""

    def __init__(self, brokers: int = 3, ports: Optional[Sequence[int]] = None,
                 configs: Optional[dict[str, str]] = None) -> None:
        if ports is not None and len(ports) != brokers:
            raise BrokerError(f"{brokers} brokers need {brokers} ports, got {list(ports)}")
        self.brokers = brokers
        self.ports = list(ports) if ports is not None else None
        self.configs = dict(DEFAULT_CONFIGS if configs is None else configs)
        self.addresses: list[str] = []
        self._proc: Optional[subprocess.Popen] = None
        self._answers: "queue.Queue[Optional[str]]" = queue.Queue()
        self._lock = threading.Lock()
        self.log_file: Optional[Path] = None  # kfake-<first port>.log under the run folder, while it runs

    @property
    def address(self) -> str:
        """The bootstrap address: every broker of the cluster."""
        if not self.addresses:
            raise BrokerError("the kfake cluster is not running")
        return ",".join(self.addresses)

    def __enter__(self) -> "KfakeCluster":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 60.0, attempts: int = 3) -> str:
        """Build the launcher if needed, start the cluster and wait until it answers metadata."""
        binary = kfake_binary()
        for attempt in range(attempts):
            ports = self.ports or free_ports(self.brokers)
            try:
                return self._start_once(binary, ports, timeout)
            except BrokerError as exc:
                if self.ports is not None or "address already in use" not in str(exc) \
                        or attempt == attempts - 1:
                    raise
                log.info("kfake could not bind its ports, retrying: %s", exc)
        raise AssertionError("unreachable")

    def _start_once(self, binary: Path, ports: list[int], timeout: float) -> str:
        run = home() / "run"
        run.mkdir(parents=True, exist_ok=True)
        self.log_file = run / f"kfake-{ports[0]}.log"
        with open(self.log_file, "wb") as err:
            flags = [f"-config={key}={value}" for key, value in self.configs.items()]
            self._proc = subprocess.Popen([str(binary), "-ports", ",".join(map(str, ports)), *flags],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                                          text=True, bufsize=1, start_new_session=True)
        self._answers = queue.Queue()
        threading.Thread(target=self._read_answers, args=(self._proc,), daemon=True,
                         name="kfake-answers").start()
        try:
            ready = json.loads(self._next_answer(timeout))
        except BrokerError:
            self._reap()
            raise
        self.addresses = list(ready["addresses"])
        deadline = time.monotonic() + timeout
        while not _answers_metadata(self.address, 2):
            if time.monotonic() > deadline or self._proc.poll() is not None:
                self.stop()
                raise BrokerError(f"kfake on {ports} did not answer metadata within {timeout:.0f} s")
            time.sleep(0.2)
        return self.address

    def _read_answers(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            self._answers.put(line)
        self._answers.put(None)

    def _next_answer(self, timeout: float) -> str:
        try:
            line = self._answers.get(timeout=timeout)
        except queue.Empty:
            raise BrokerError(f"kfake did not answer within {timeout:.0f} s") from None
        if line is None:
            self._proc.wait()
            raise BrokerError(f"kfake exited with code {self._proc.returncode}; log {self.log_file}:\n"
                              f"{tail(self.log_file)}")
        return line

    def _reap(self) -> None:
        proc, self._proc = self._proc, None
        self.addresses = []
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        proc.wait()

    def stop(self, timeout: float = 10.0) -> None:
        """End the cluster (its stdin closes; killed if it has not exited after `timeout`) and delete
        its log (kept when the start fails, for the error that names it)."""
        proc = self._proc
        if proc is None:
            return
        try:
            proc.stdin.close()
            proc.wait(timeout)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self._reap()
        if self.log_file is not None:
            self.log_file.unlink(missing_ok=True)

    def call(self, op: str, timeout: float = 30.0, **fields: Any) -> dict:
        """Send one command to the launcher and return its answer; BrokerError for a refused one."""
        with self._lock:
            if self._proc is None:
                raise BrokerError("the kfake cluster is not running")
            self._proc.stdin.write(json.dumps({"op": op, **fields}) + "\n")
            self._proc.stdin.flush()
            answer = json.loads(self._next_answer(timeout))
        if not answer.pop("ok"):
            raise BrokerError(f"kfake refused {op} {fields}: {answer['error']}")
        return answer

    def fault(self, key: str, error: str, *, topic: str = "", partitions: Sequence[int] = (),
              group: str = "", count: int = 1, top_level: bool = False,
              min_fetch_offset: Optional[int] = None) -> int:
        """Answer the next `count` (-1: all, until removed) requests of API `key` that match with the
        Kafka error `error` (a name such as "NOT_LEADER_OR_FOLLOWER"); returns the fault's id."""
        fields: dict[str, Any] = {"key": key, "error": error, "topic": topic,
                                  "partitions": list(partitions) or None, "group": group,
                                  "count": count, "top_level": top_level}
        if min_fetch_offset is not None:
            fields["min_fetch_offset"] = min_fetch_offset
        return self.call("fault", **fields)["id"]

    def delay(self, key: str, ms: int, *, topic: str = "", count: int = 1) -> int:
        """Hold the next `count` requests of API `key` naming `topic` for `ms` ms before answering them."""
        return self.call("delay", key=key, ms=ms, topic=topic, count=count)["id"]

    def hits(self, fault_id: int) -> int:
        """How many requests a fault or delay has acted on."""
        return self.call("hits", id=fault_id)["hits"]

    def remove(self, fault_id: int) -> None:
        self.call("remove", id=fault_id)

    def leader(self, topic: str, partition: int) -> int:
        return self.call("leader", topic=topic, partition=partition)["leader"]

    def move_leader(self, topic: str, partition: int) -> int:
        """Move the partition's leadership to the next broker (new leader epoch); returns it."""
        return self.call("move", topic=topic, partition=partition)["leader"]
