"""What the benchmarks share: the cases' names, the C baseline's build, producing test topics, running a
reader in its own process with its memory sampled, rounds, medians and paired ratios, and the broker.
`suite.py`, `registry_bench.py`, `ray_bench.py` and `peers/` import it; it imports none of them."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator, Optional

HERE = Path(__file__).resolve().parent
PARTITIONS = 4

A = "a: C librdkafka, 1 consumer"
A_EACH = f"a{PARTITIONS}: C librdkafka, {PARTITIONS} consumers"
B = "b: confluent-kafka + pyarrow"
C = "c: fastsource, 1 reader"
C_EACH = f"c{PARTITIONS}: fastsource, {PARTITIONS} readers"
JSON_PY = "json.loads + Table.from_pylist"
JSON_FS = "fastsource Json(schema)"
# Like for like first: one consumer against one reader, one consumer per partition against one reader
# per partition; then what each fastsource setting gains over what Python users write today.
COMPARISONS = [(C, A), (C_EACH, A_EACH), (C, B), (C_EACH, B), (C_EACH, A), (JSON_FS, JSON_PY)]


def build_c_baseline(out_dir: Path) -> Path:
    import confluent_kafka  # noqa: F401  (so that its librdkafka is mapped)
    import confluent_kafka.cimpl  # noqa: F401
    from fastsource._librdkafka import _loaded_librdkafka

    lib = _loaded_librdkafka()
    if lib is None:
        raise SystemExit("cannot locate confluent-kafka's librdkafka")
    import fastsource

    include = Path(fastsource.__file__).parent / "includes"
    exe = out_dir / "rdkafka_baseline"
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        raise SystemExit("the C baseline needs a C compiler (gcc or cc) on PATH")
    subprocess.run([gcc, "-O2", "-pthread", "-I", str(include), str(HERE / "rdkafka_baseline.c"), "-o", str(exe),
                    lib, f"-Wl,-rpath,{Path(lib).parent}"], check=True)
    return exe


def produce(bootstrap: str, topic: str, messages: int, kind: str, partitions: int = PARTITIONS,
            pool: Optional[list[bytes]] = None) -> None:
    """`messages` records of `kind` (100b, 1kb, json; or taken round-robin from `pool`) spread over
    `partitions` of a new topic; nothing if the topic exists."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    if topic in admin.list_topics(timeout=15).topics:
        return
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result()
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50, "batch.size": 1 << 20,
                         "queue.buffering.max.messages": 2_000_000,
                         "queue.buffering.max.kbytes": 1 << 21})
    if pool is not None:
        make = lambda i: pool[i % len(pool)]  # noqa: E731
    elif kind == "json":
        kinds = ["view", "click", "purchase", "signup"]
        make = lambda i: json.dumps({"id": i, "user": i * 7919 % 100_000, "kind": kinds[i % 4],  # noqa: E731
                                     "amount": (i % 10_000) / 100, "ts": 1_700_000_000_000 + i}).encode()
    else:
        size = 100 if kind == "100b" else 1000
        blobs = [os.urandom(size) for _ in range(1024)]
        make = lambda i: blobs[i & 1023]  # noqa: E731
    started = time.perf_counter()
    for i in range(messages):
        while True:
            try:
                producer.produce(topic, make(i), partition=i % partitions)
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush()
    print(f"  produced {messages:,} {kind} messages to {topic} in {time.perf_counter() - started:.1f} s",
          flush=True)


class ReaderFailed(Exception):
    """A reader process exited with an error, timed out or printed no result line."""


def _children(pid: int) -> list[int]:
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    found = []
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as children:
                found.extend(int(c) for c in children.read().split())
        except OSError:
            pass
    return found


def _in_session(sid: int) -> list[int]:
    """Processes of session `sid`: descendants that daemonized (reparented to init) are still found."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[4]) == sid:
                        found.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return found


# Memory sampling of a running reader: every 50 ms, at most ~2% of a core.
SAMPLE_EVERY_S = 0.05
SAMPLER_SHARE = 0.02


def _memory_kb(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of one process in kB; PSS shares pages mapped by several processes (a Ray object
    store, a JVM's shared archive) among them, so that a tree's sum counts them once."""
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1])
                    break
    except OSError:
        pass
    return rss, pss


def run_reader(cmd: list[str], timeout: float | None = None, env: dict | None = None) -> dict:
    """Run one reader in a process of its own (and a session of its own), sampling the memory of its
    whole process tree (a JVM's or a Ray cluster's processes count) every 50 ms, or less often when a
    sample costs more than 1 ms: reading smaps_rollup of processes with large mappings (a Ray object
    store) costs ~16 ms, and the sampler must not take more than ~2% of a core from the reader it
    measures. Returns the reader's result line with wall_seconds (spawn to exit) and peak tree
    RSS/PSS in MB added."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, text=True,
                                cwd=tempfile.gettempdir(), env=env, start_new_session=True)
        known: set[int] = {proc.pid}
        peak_rss = peak_pss = 0
        samples = 0
        try:
            while proc.poll() is None:
                if timeout is not None and time.perf_counter() - started > timeout:
                    raise ReaderFailed(f"timed out after {timeout:.0f} s")
                if samples % 20 == 0:
                    known.update(_in_session(proc.pid))
                tree, todo = set(), list(known)
                while todo:
                    pid = todo.pop()
                    if pid not in tree:
                        tree.add(pid)
                        todo.extend(_children(pid))
                known = tree
                sampled = time.perf_counter()
                sizes = [_memory_kb(pid) for pid in tree]
                peak_rss = max(peak_rss, sum(r for r, _ in sizes))
                peak_pss = max(peak_pss, sum(p for _, p in sizes))
                samples += 1
                time.sleep(max(SAMPLE_EVERY_S, (time.perf_counter() - sampled) / SAMPLER_SHARE))
            wall = time.perf_counter() - started
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # what the reader left behind (a Ray cluster's daemons)
            except ProcessLookupError:
                pass
            proc.wait()
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    lines = stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise ReaderFailed(f"{' '.join(cmd)} exited with {proc.returncode}:\n{stderr[-3000:]}")
    try:
        result = json.loads(lines[-1])
    except ValueError:
        raise ReaderFailed(f"{' '.join(cmd)} printed no result line:\n{stdout[-1000:]}") from None
    result["wall_seconds"] = wall
    result["tree_rss_mb"] = peak_rss / 1024
    result["tree_pss_mb"] = peak_pss / 1024
    return result


def run_rounds(cases: dict[str, dict[str, list[str]]], rounds: int, n: int,
               failures: dict[str, str] | None = None,
               timeout: float | None = None) -> dict[str, dict[str, list[dict]]]:
    """Every reader of every case once per round, in an order rotated each round; a reader must read
    all n records. With `failures`, a reader that fails is recorded there and left out of later
    rounds instead of ending the run."""
    results: dict[str, dict[str, list[dict]]] = {c: {r: [] for r in readers} for c, readers in cases.items()}
    for round_ in range(rounds):
        for case, readers in cases.items():
            names = list(readers)
            names = names[round_ % len(names):] + names[:round_ % len(names)]
            for name in names:
                if failures is not None and name in failures:
                    continue
                try:
                    result = run_reader(readers[name], timeout)
                    if result["messages"] != n:
                        raise ReaderFailed(f"{name} read {result['messages']} of {n} messages")
                except ReaderFailed as exc:
                    if failures is None:
                        raise SystemExit(str(exc)) from None
                    reason = str(exc).strip().splitlines()[-1][:200]
                    failures[name] = f"unavailable: failed in round {round_ + 1}: {reason}"
                    print(f"  round {round_ + 1} {case:5} {name:32} FAILED: {exc}", flush=True)
                    continue
                results[case][name].append(result)
                print(f"  round {round_ + 1} {case:5} {name:32} {n / result['wall_seconds']:>12,.0f} msg/s "
                      f"(process)  {n / result['seconds']:>12,.0f} msg/s (connect..end)", flush=True)
    return results


def median_of(runs: list[dict], key: str) -> float:
    """Median of one figure over a reader's rounds."""
    return statistics.median(r[key] for r in runs)


def paired_ratio(fast: list[dict], other: list[dict], key: str = "wall_seconds") -> float:
    """Median over rounds of other's time / fast's time: runs of one round are adjacent in time, so
    their ratio is less exposed to the machine's drift than the ratio of medians."""
    return statistics.median(o[key] / f[key] for f, o in zip(fast, other))



@contextlib.contextmanager
def bench_broker(bootstrap: Optional[str], port: int, prefix: str) -> Iterator[tuple[str, Path, Any]]:
    """The cluster a benchmark reads (`bootstrap`, else a local broker started on `port`), a scratch
    folder, and the local broker (None with `bootstrap`); at the end the local broker is stopped and
    wiped and the folder removed."""
    from fastsource.broker import LocalBroker

    work = Path(tempfile.mkdtemp(prefix=prefix))
    broker = None
    try:
        if bootstrap is None:
            broker = LocalBroker(port=port, data_dir=work / "kafka")
            bootstrap = broker.start()
        yield bootstrap, work, broker
    finally:
        if broker is not None:
            broker.stop()
            broker.wipe()
        shutil.rmtree(work, ignore_errors=True)
