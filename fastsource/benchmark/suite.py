"""The benchmark suite: fastsource against the baselines, side by side in one run on one local broker.

    python bench/run.py                      # full run: 5 M messages per case, 5 rounds, RSS at 5 M and 20 M
    python bench/run.py --quick              # smoke run (CI): 100 k messages, 1 round, no timing claims
    fastsource bench [--full]                # the same from an installed fastsource (quick by default)

Readers run one per process, alternating order each round; the figures are medians over rounds.
Baselines: (a) a C librdkafka consumer linked against the librdkafka confluent-kafka ships, and (a4)
the same program with one consumer per partition on threads, the match of fastsource with one reader
per partition (c4); (b) confluent-kafka consume() in a loop plus pyarrow arrays built from the message
lists. Peak RSS is measured for fastsource with one reader.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


def produce(bootstrap: str, topic: str, messages: int, kind: str, partitions: int = PARTITIONS) -> None:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    if topic in admin.list_topics(timeout=15).topics:
        return
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result()
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50, "batch.size": 1 << 20,
                         "queue.buffering.max.messages": 2_000_000,
                         "queue.buffering.max.kbytes": 1 << 21})
    if kind == "json":
        kinds = ["view", "click", "purchase", "signup"]
        make = lambda i: json.dumps({"id": i, "user": i * 7919 % 100_000, "kind": kinds[i % 4],  # noqa: E731
                                     "amount": (i % 10_000) / 100, "ts": 1_700_000_000_000 + i}).encode()
    else:
        size = 100 if kind == "100b" else 1000
        pool = [os.urandom(size) for _ in range(1024)]
        make = lambda i: pool[i & 1023]  # noqa: E731
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


def run_reader(cmd: list[str]) -> dict:
    started = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=tempfile.gettempdir())
    wall = time.perf_counter() - started
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["wall_seconds"] = wall
    return result


def main(argv: list[str] | None = None, quick_default: bool = False) -> None:
    parser = argparse.ArgumentParser(prog="fastsource bench" if quick_default else None, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=5_000_000)
    parser.add_argument("--rss-messages", type=int, default=20_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", default=quick_default,
                        help="smoke run: 100 k messages, 1 round")
    parser.add_argument("--full", dest="quick", action="store_false", help="the full run")
    parser.add_argument("--bootstrap", help="use this cluster instead of a local broker")
    parser.add_argument("--port", type=int, default=29292)
    parser.add_argument("--ranges", action="store_true",
                        help="only the range-split case: read_all() of one partition by 1, 2, 4 readers")
    args = parser.parse_args(argv)
    if args.quick:
        args.messages, args.rss_messages, args.rounds = 100_000, 200_000, 1

    from fastsource.broker import LocalBroker

    work = Path(tempfile.mkdtemp(prefix="fastsource-bench-"))
    broker = None
    bootstrap = args.bootstrap
    if bootstrap is None:
        broker = LocalBroker(port=args.port, data_dir=work / "kafka")
        bootstrap = broker.start()
    try:
        if args.ranges:
            return ranges_case(bootstrap, args.messages, args.rounds)
        exe = build_c_baseline(work)
        n = args.messages
        topics = {"100b": f"bench-100b-{n}", "1kb": f"bench-1kb-{n}", "json": f"bench-json-{n}",
                  "rss": f"bench-100b-{args.rss_messages}"}
        print(f"broker {bootstrap}; producing ...", flush=True)
        produce(bootstrap, topics["100b"], n, "100b")
        produce(bootstrap, topics["1kb"], n, "1kb")
        produce(bootstrap, topics["json"], n, "json")
        produce(bootstrap, topics["rss"], args.rss_messages, "100b")

        py = [sys.executable, str(HERE / "readers.py")]  # a script: baselines do not import fastsource
        parts = str(PARTITIONS)

        def throughput_case(topic: str) -> dict[str, list[str]]:
            return {A: [str(exe), bootstrap, topic, parts, "1"],
                    A_EACH: [str(exe), bootstrap, topic, parts, parts],
                    B: py + ["confluent", bootstrap, topic, parts],
                    C: py + ["fastsource", bootstrap, topic, parts, "1"],
                    C_EACH: py + ["fastsource", bootstrap, topic, parts, parts]}

        cases = {
            "100b": throughput_case(topics["100b"]),
            "1kb": throughput_case(topics["1kb"]),
            "json": {JSON_PY: py + ["python-json", bootstrap, topics["json"], parts],
                     JSON_FS: py + ["fastsource-json", bootstrap, topics["json"], parts]},
        }
        results: dict[str, dict[str, list[dict]]] = {c: {r: [] for r in readers} for c, readers in cases.items()}
        for round_ in range(args.rounds):
            for case, readers in cases.items():
                names = list(readers)
                names = names[round_ % len(names):] + names[:round_ % len(names)]
                for name in names:
                    result = run_reader(readers[name])
                    if result["messages"] != n:
                        raise SystemExit(f"{name} read {result['messages']} of {n} messages")
                    results[case][name].append(result)
                    print(f"  round {round_ + 1} {case:5} {name:32} {n / result['wall_seconds']:>12,.0f} msg/s "
                          f"(process)  {n / result['seconds']:>12,.0f} msg/s (connect..end)", flush=True)
        rss = {}
        for label, topic, count in (("small", topics["100b"], n), ("large", topics["rss"], args.rss_messages)):
            result = run_reader(py + ["fastsource", bootstrap, topic, parts, "1"])
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
                wall = statistics.median(r["wall_seconds"] for r in runs)
                inner = statistics.median(r["seconds"] for r in runs)
                medians[name] = (n / wall, n / inner)
                mb = runs[0]["bytes"] / wall / 1e6
                rss_mb = statistics.median(r["peak_rss_mb"] for r in runs if "peak_rss_mb" in r) \
                    if any("peak_rss_mb" in r for r in runs) else float("nan")
                print(f"| {name} | {n / wall:,.0f} | {n / inner:,.0f} | {mb:,.1f} | {rss_mb:,.0f} |")
            print()
            for fast, other in COMPARISONS:
                if fast in readers and other in readers:
                    # Runs of one round are adjacent in time, so their ratio is less exposed to the
                    # machine's drift than the ratio of medians.
                    paired = statistics.median(o["wall_seconds"] / f["wall_seconds"]
                                               for f, o in zip(readers[fast], readers[other]))
                    print(f"- {fast} / {other}: {medians[fast][0] / medians[other][0]:.2f}x whole process, "
                          f"{medians[fast][1] / medians[other][1]:.2f}x connect to end (ratio of medians); "
                          f"{paired:.2f}x whole process (median of the per-round ratios)")
            print()
        print("### Peak RSS of a fastsource read (whole process)")
        print()
        for count, mb in rss.items():
            print(f"- {count:,} messages: {mb:,.0f} MB")
    finally:
        if broker is not None:
            broker.stop()
        shutil.rmtree(work, ignore_errors=True)


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


if __name__ == "__main__":
    main()
