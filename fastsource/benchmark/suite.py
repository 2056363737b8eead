"""The benchmark suite: fastsource against the baselines, side by side in one run on one local broker.

    fastsource bench                         # smoke run (CI): 100 k messages, 1 round, no timing claims
    fastsource bench --full                  # full run: 5 M messages per case, 5 rounds, RSS at 5 M and 20 M
    fastsource bench --full --cli-rss        # only peak RSS of `fastsource read -o file.parquet`, Binary and JSON, 2 M and 10 M
    fastsource bench --full --many-partitions  # 1,000 partitions, a 300-topic regex, first-batch times
    fastsource bench --peers --records 5000000 --rounds 3   # against Flink, Ray Data, aiokafka (peers/)
    fastsource bench --registry [--full]     # Avro and Protobuf from a Schema Registry (registry_bench.py)
    fastsource bench --peers --full --chart peers.svg        # ... and draw records/s and memory (chart.py)
    python bench/run.py [...]                # the same from a source checkout (full by default)

Readers run one per process, alternating order each round; the figures are medians over rounds.
Baselines: (a) a C librdkafka consumer linked against the librdkafka confluent-kafka ships, and (a4)
the same program with one consumer per partition on threads, the match of fastsource with one reader
per partition (c4); (b) confluent-kafka consume() in a loop plus pyarrow arrays built from the message
lists. Peak RSS is measured for fastsource with one reader. With --peers, fastsource runs against what
users would pick instead (fastsource/benchmark/peers/).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
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


def against(checkout: Optional[Path]) -> tuple[Optional[tuple[str, list[str], str]], list[tuple[str, str]]]:
    """For `--against CHECKOUT`: (the 1-reader label, the command prefix running that checkout's
    readers.py with its .venv, the JSON label) and the comparisons to print; (None, []) without it."""
    if checkout is None:
        return None, []
    python = checkout / ".venv" / "bin" / "python"
    readers = checkout / "fastsource" / "benchmark" / "readers.py"
    if not python.exists() or not readers.exists():
        raise SystemExit(f"--against {checkout}: needs {python} and {readers} (a built checkout)")
    commit = subprocess.run(["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip() or str(checkout)
    one, json_label = f"{C} at {commit}", f"{JSON_FS} at {commit}"
    return (one, [str(python), str(readers)], json_label), [(C, one), (JSON_FS, json_label)]


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


# Runs argv[1:] and prints its peak RSS in KiB. Linux carries a process's peak RSS across fork and
# execve, so a command started straight from this (large) process would report this process's peak;
# started from a fresh small interpreter, it inherits only that interpreter's few MB.
_PEAK_RSS = """import os, subprocess, sys
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(child.pid, 0)
print(usage.ru_maxrss)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def peak_rss(cmd: list[str]) -> tuple[int, float, str]:
    """Run `cmd` (its stdout discarded) and return its exit code, its peak RSS in MB and its stderr."""
    proc = subprocess.run([sys.executable, "-c", _PEAK_RSS, *cmd], capture_output=True, text=True)
    lines = proc.stdout.split()
    return proc.returncode, (int(lines[-1]) / 1024 if lines else float("nan")), proc.stderr


def cli_rss(bootstrap: str, counts: list[int], work: Path,
            kinds: tuple[str, ...] = ("binary", "json")) -> dict[tuple[str, int], dict]:
    """Peak RSS (and wall time) of `fastsource read -t TOPIC -o file.parquet` over topics of `counts`
    records, 4 partitions, as Binary (100-byte records) and as decoded JSON (~110-byte objects of five
    fields, `--value-format json`), with the command's defaults: the bound docs/cli.md states (`kinds`
    picks among "binary" and "json"). The
    peak is the command's `ru_maxrss` (the whole process, threads included), see `peak_rss`."""
    exe = Path(sys.executable).parent / "fastsource"
    results = {}
    for kind, value_format in (("100b", "binary"), ("json", "json")):
        if value_format not in kinds:
            continue
        for count in counts:
            topic = f"bench-{kind}-{count}"
            produce(bootstrap, topic, count, kind)
            out = work / f"cli-{kind}-{count}.parquet"
            cmd = [str(exe), "read", "-b", bootstrap, "-t", topic, "-o", str(out), "--no-progress",
                   "--overwrite", "--value-format", value_format]
            started = time.perf_counter()
            code, peak_mb, stderr = peak_rss(cmd)
            wall = time.perf_counter() - started
            if code != 0:
                raise SystemExit(f"{' '.join(cmd)} failed:\n{stderr[-3000:]}")
            result = results[(value_format, count)] = {
                "peak_rss_mb": peak_mb, "seconds": wall, "file_mb": out.stat().st_size / 1e6}
            out.unlink()
            print(f"  fastsource read -o file.parquet --value-format {value_format}, {count:,} records: "
                  f"peak RSS {result['peak_rss_mb']:,.0f} MB, {wall:.1f} s, file {result['file_mb']:,.0f} MB",
                  flush=True)
    return results


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

def main(argv: list[str] | None = None, quick_default: bool = False) -> None:
    parser = argparse.ArgumentParser(prog="fastsource bench" if quick_default else None, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", "--records", dest="messages", type=int,
                        help="records per case (5 M; quick: 100 k)")
    parser.add_argument("--rss-messages", type=int, help="records of the RSS run (20 M; quick: 200 k)")
    parser.add_argument("--rounds", type=int, help="rounds (5; quick: 1)")
    parser.add_argument("--quick", action="store_true", default=quick_default,
                        help="smoke run: 100 k messages, 1 round")
    parser.add_argument("--full", dest="quick", action="store_false", help="the full run")
    parser.add_argument("--against", type=Path, metavar="CHECKOUT",
                        help="also run the fastsource readers of another checkout (its .venv, built) in the "
                             "same rounds, e.g. the commit before a change to the fetch path")
    parser.add_argument("--peers", action="store_true",
                        help="fastsource against Flink's KafkaSource, Ray Data, aiokafka and the baselines")
    parser.add_argument("--registry", action="store_true",
                        help="Avro and Protobuf topics from a Schema Registry against confluent-kafka's "
                             "deserializers, the Binary read and Flink (50 k records; --full: 2 M)")
    parser.add_argument("--cases", metavar="CASE,...",
                        help="with --registry: only these of avro-6, avro-wide, protobuf-6, protobuf-wide")
    parser.add_argument("--no-flink", action="store_true", help="with --registry: leave Flink out")
    parser.add_argument("--schema-registry", metavar="URL",
                        help="with --registry: use this registry instead of a local one")
    parser.add_argument("--markdown", type=Path,
                        help="with --peers or --registry: also write the tables to this file")
    parser.add_argument("--chart", type=Path,
                        help="with --peers: also draw the figures as a bar chart to this .svg or .png "
                             "(needs matplotlib: pip install 'fastsource[bench]')")
    parser.add_argument("--bootstrap", help="use this cluster instead of a local broker")
    parser.add_argument("--port", type=int, default=29292)
    parser.add_argument("--ranges", action="store_true",
                        help="only the range-split case: read_all() of one partition by 1, 2, 4 readers")
    parser.add_argument("--many-partitions", action="store_true",
                        help="only the scale case: read_all() against a bounded stream over a 1,000-partition "
                             "topic and a 300-topic regex, and time to first batch for 10/100/1,000 partitions")
    parser.add_argument("--cli-rss", action="store_true",
                        help="only peak RSS of `fastsource read -o file.parquet`, Binary and JSON, 2 M and "
                             "10 M records (quick: 100 k, 200 k)")
    args = parser.parse_args(argv)
    if args.chart is not None:
        if not args.peers or args.chart.suffix not in (".svg", ".png"):
            parser.error("--chart FILE.svg|FILE.png goes with --peers")
        import importlib.util

        if importlib.util.find_spec("matplotlib") is None:
            parser.error("--chart needs matplotlib: pip install 'fastsource[bench]'")
    if args.registry:
        from fastsource.benchmark import registry_bench

        return registry_bench.main(args)
    quick = (100_000, 200_000, 1) if args.quick else (5_000_000, 20_000_000, 5)
    args.messages = args.messages or quick[0]
    args.rss_messages = args.rss_messages or quick[1]
    args.rounds = args.rounds or quick[2]

    with bench_broker(args.bootstrap, args.port, "fastsource-bench-") as (bootstrap, work, _):
        if args.ranges:
            return ranges_case(bootstrap, args.messages, args.rounds)
        if args.many_partitions:
            return many_partitions_case(bootstrap, args.rounds, 20 if args.quick else 100)
        if args.cli_rss:
            cli_rss(bootstrap, [100_000, 200_000] if args.quick else [2_000_000, 10_000_000], work)
            return
        exe = build_c_baseline(work)
        n = args.messages
        if args.peers:
            from fastsource.benchmark.peers import run_peers

            run_peers(bootstrap, n, args.rounds, exe, args.markdown, args.chart)
            return
        topics = {"100b": f"bench-100b-{n}", "1kb": f"bench-1kb-{n}", "json": f"bench-json-{n}",
                  "rss": f"bench-100b-{args.rss_messages}"}
        print(f"broker {bootstrap}; producing ...", flush=True)
        produce(bootstrap, topics["100b"], n, "100b")
        produce(bootstrap, topics["1kb"], n, "1kb")
        produce(bootstrap, topics["json"], n, "json")
        produce(bootstrap, topics["rss"], args.rss_messages, "100b")

        py = [sys.executable, str(HERE / "readers.py")]  # a script: baselines do not import fastsource
        parts = str(PARTITIONS)

        other, comparisons = against(args.against)

        def throughput_case(topic: str) -> dict[str, list[str]]:
            case = {A: [str(exe), bootstrap, topic, parts, "1"],
                    A_EACH: [str(exe), bootstrap, topic, parts, parts],
                    B: py + ["confluent", bootstrap, topic, parts],
                    C: py + ["fastsource", bootstrap, topic, parts, "1"],
                    C_EACH: py + ["fastsource", bootstrap, topic, parts, parts]}
            if other:
                case[other[0]] = other[1] + ["fastsource", bootstrap, topic, parts, "1"]
            return case

        cases = {
            "100b": throughput_case(topics["100b"]),
            "1kb": throughput_case(topics["1kb"]),
            "json": {JSON_PY: py + ["python-json", bootstrap, topics["json"], parts],
                     JSON_FS: py + ["fastsource-json", bootstrap, topics["json"], parts]},
        }
        if other:
            cases["json"][other[2]] = other[1] + ["fastsource-json", bootstrap, topics["json"], parts]
        results = run_rounds(cases, args.rounds, n)
        rss = {}
        for label, topic, count in (("small", topics["100b"], n), ("large", topics["rss"], args.rss_messages)):
            try:
                result = run_reader(py + ["fastsource", bootstrap, topic, parts, "1"])
            except ReaderFailed as exc:
                raise SystemExit(str(exc)) from None
            if result["messages"] != count:
                raise SystemExit(f"RSS run read {result['messages']} of {count}")
            rss[count] = result["peak_rss_mb"]

        print()
        print(f"## Results: {n:,} messages per case, {PARTITIONS} partitions, {args.rounds} round(s), median")
        print()
        for case, readers in results.items():
            print(f"### {case}")
            print()
            print("| reader | msg/s, whole process | msg/s, connect to end | MB/s (key+value), whole process "
                  "| peak RSS MB |")
            print("|---|---:|---:|---:|---:|")
            medians = {}
            for name, runs in readers.items():
                wall = median_of(runs, "wall_seconds")
                inner = median_of(runs, "seconds")
                medians[name] = (n / wall, n / inner)
                mb = runs[0]["bytes"] / wall / 1e6
                rss_mb = statistics.median(r["peak_rss_mb"] for r in runs if "peak_rss_mb" in r) \
                    if any("peak_rss_mb" in r for r in runs) else float("nan")
                print(f"| {name} | {n / wall:,.0f} | {n / inner:,.0f} | {mb:,.1f} | {rss_mb:,.0f} |")
            print()
            for fast, slow in COMPARISONS + comparisons:
                if fast in readers and slow in readers:
                    paired = paired_ratio(readers[fast], readers[slow])
                    print(f"- {fast} / {slow}: {medians[fast][0] / medians[slow][0]:.2f}x whole process, "
                          f"{medians[fast][1] / medians[slow][1]:.2f}x connect to end (ratio of medians); "
                          f"{paired:.2f}x whole process (median of the per-round ratios)")
            print()
        print("### Peak RSS of a fastsource read (whole process)")
        print()
        for count, mb in rss.items():
            print(f"- {count:,} messages: {mb:,.0f} MB")


RANGES_READER = """
import json, sys, time
import fastsource as fs
bootstrap, topic, parallelism = sys.argv[1], sys.argv[2], int(sys.argv[3])
started = time.perf_counter()
table = fs.KafkaSource(bootstrap, topics=[topic]).read_all(parallelism=parallelism)
print(json.dumps({"messages": table.num_rows, "seconds": time.perf_counter() - started}))
"""


def ranges_case(bootstrap: str, messages: int, rounds: int, readers: tuple[int, ...] = (1, 2, 4)) -> None:
    """One partition of 100-byte records read by `read_all(parallelism=p)`, which cuts it into p offset
    ranges: the speed-up of p readers over one, round-robin over the rounds, medians printed."""
    topic = f"bench-ranges-100b-{messages}"
    produce(bootstrap, topic, messages, "100b", partitions=1)
    times: dict[int, list[float]] = {p: [] for p in readers}
    for round_ in range(rounds):
        order = list(readers[round_ % len(readers):] + readers[:round_ % len(readers)])
        for p in order:
            result = run_reader([sys.executable, "-c", RANGES_READER, bootstrap, topic, str(p)])
            if result["messages"] != messages:
                raise SystemExit(f"read_all(parallelism={p}) read {result['messages']} of {messages}")
            times[p].append(result["wall_seconds"])
            print(f"  round {round_ + 1} read_all(parallelism={p}) {messages / result['wall_seconds']:>12,.0f} "
                  f"msg/s (process)  {messages / result['seconds']:>12,.0f} msg/s (read_all)", flush=True)
    print()
    print(f"## Range splits: {messages:,} 100-byte messages in 1 partition, {rounds} round(s), median")
    print()
    print("| readers | msg/s, whole process | speed-up over 1 reader |")
    print("|---:|---:|---:|")
    base = statistics.median(times[readers[0]])
    for p in readers:
        wall = statistics.median(times[p])
        print(f"| {p} | {messages / wall:,.0f} | {base / wall:.2f}x |")



MANY_READER = """
import json, sys, time
import fastsource as fs
bootstrap, mode, what = sys.argv[1], sys.argv[2], sys.argv[3]
subscription = {"topic_pattern": what[len("regex:"):]} if what.startswith("regex:") else {"topics": [what]}
source = fs.KafkaSource(bootstrap, stopping_offsets=fs.OffsetsInitializer.latest(), **subscription)
started = time.perf_counter()
first = None
if mode == "read_all":
    rows = source.read_all().num_rows
else:
    rows = 0
    with source.open(parallelism=fs.default_parallelism() if mode == "stream" else 1) as stream:
        for batch in stream:
            if first is None:
                first = time.perf_counter() - started
                if mode == "first":
                    break
            rows += batch.num_rows
print(json.dumps({"messages": rows, "seconds": time.perf_counter() - started, "first_batch_s": first}))
"""


def produce_partitions(bootstrap: str, topics: dict[str, int], per_partition: int) -> None:
    """Topics of `topics[name]` partitions, each partition holding `per_partition` 100-byte records."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    existing = admin.list_topics(timeout=15).topics
    missing = {name: n for name, n in topics.items() if name not in existing}
    if not missing:
        return
    for future in admin.create_topics([NewTopic(name, n, 1) for name, n in missing.items()]).values():
        future.result()
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    value = os.urandom(100)
    for name, n in missing.items():
        for partition in range(n):
            for _ in range(per_partition):
                while True:
                    try:
                        producer.produce(name, value, partition=partition)
                        break
                    except BufferError:
                        producer.poll(0.05)
    producer.flush()


def many_partitions_case(bootstrap: str, rounds: int, per_partition: int) -> None:
    """Many partitions: `read_all()` against a bounded stream of the same records (both with the
    default parallelism), over one topic of 1,000 partitions and a regex matching 300 one-partition
    topics; and the time to the first batch of one reader over 10, 100 and 1,000 partitions.
    Each read runs in its own process, in rotating order; medians over the rounds are printed."""
    tag = f"{per_partition}"
    topics = {f"bench-many-{n}-{tag}": n for n in (10, 100, 1000)}
    regex_topics = {f"bench-regex-{tag}-{i:03d}": 1 for i in range(300)}
    print(f"broker {bootstrap}; producing {per_partition} records per partition ...", flush=True)
    produce_partitions(bootstrap, {**topics, **regex_topics}, per_partition)
    big = f"bench-many-1000-{tag}"
    regex = f"regex:bench-regex-{tag}-.*"
    cases = {"1,000 partitions": [("read_all", big), ("stream", big)],
             "300-topic regex": [("read_all", regex), ("stream", regex)]}
    first_cases = [(n, f"bench-many-{n}-{tag}") for n in (10, 100, 1000)]
    expected = {big: 1000 * per_partition, regex: 300 * per_partition}
    times: dict[tuple[str, str], list[float]] = {}
    firsts: dict[int, list[float]] = {n: [] for n, _ in first_cases}
    for round_ in range(rounds):
        for case, runs in cases.items():
            order = runs[round_ % 2:] + runs[:round_ % 2]
            for mode, what in order:
                result = run_reader([sys.executable, "-c", MANY_READER, bootstrap, mode, what], timeout=600)
                if result["messages"] != expected[what]:
                    raise SystemExit(f"{mode} of {what} read {result['messages']} of {expected[what]}")
                times.setdefault((case, mode), []).append(result["seconds"])
                print(f"  round {round_ + 1} {case:17} {mode:9} {result['seconds']:7.2f} s", flush=True)
        for n, topic in first_cases:
            result = run_reader([sys.executable, "-c", MANY_READER, bootstrap, "first", topic], timeout=600)
            firsts[n].append(result["first_batch_s"])
            print(f"  round {round_ + 1} first batch, {n:5} partitions {result['first_batch_s']:7.2f} s", flush=True)
    print()
    print(f"## Many partitions: {per_partition} 100-byte records per partition, {rounds} round(s), median")
    print()
    print("| read | read_all() s | bounded stream s | read_all / stream |")
    print("|---|---:|---:|---:|")
    for case in cases:
        all_s, stream_s = statistics.median(times[(case, "read_all")]), statistics.median(times[(case, "stream")])
        print(f"| {case} | {all_s:.2f} | {stream_s:.2f} | {all_s / stream_s:.2f}x |")
    print()
    print("| partitions (1 reader) | time to first batch s | per partition ms |")
    print("|---:|---:|---:|")
    for n, _ in first_cases:
        median = statistics.median(firsts[n])
        print(f"| {n:,} | {median:.2f} | {1000 * median / n:.2f} |")


if __name__ == "__main__":
    main()
