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
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from fastsource.benchmark.harness import (A, A_EACH, B, C, C_EACH, COMPARISONS, HERE, JSON_FS, JSON_PY, PARTITIONS,
                                          ReaderFailed, bench_broker, build_c_baseline, median_of, paired_ratio,
                                          produce, run_reader, run_rounds)


def cli_rss(bootstrap: str, counts: list[int], work: Path) -> dict[tuple[str, int], dict]:
    """Peak RSS (and wall time) of `fastsource read -t TOPIC -o file.parquet` over topics of `counts`
    records, 4 partitions, as Binary (100-byte records) and as decoded JSON (~110-byte objects of five
    fields, `--value-format json`), with the command's defaults: the bound docs/cli.md states. The
    peak is the child's `ru_maxrss` from `wait4` (the whole process, threads included)."""
    exe = Path(sys.executable).parent / "fastsource"
    results = {}
    for kind, value_format in (("100b", "binary"), ("json", "json")):
        for count in counts:
            topic = f"bench-{kind}-{count}"
            produce(bootstrap, topic, count, kind)
            out = work / f"cli-{kind}-{count}.parquet"
            cmd = [str(exe), "read", "-b", bootstrap, "-t", topic, "-o", str(out), "--no-progress",
                   "--overwrite", "--value-format", value_format]
            started = time.perf_counter()
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - started
            if os.waitstatus_to_exitcode(status) != 0:
                raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr.read().decode()[-3000:]}")
            result = results[(value_format, count)] = {
                "peak_rss_mb": usage.ru_maxrss / 1024, "seconds": wall, "file_mb": out.stat().st_size / 1e6}
            out.unlink()
            print(f"  fastsource read -o file.parquet --value-format {value_format}, {count:,} records: "
                  f"peak RSS {result['peak_rss_mb']:,.0f} MB, {wall:.1f} s, file {result['file_mb']:,.0f} MB",
                  flush=True)
    return results


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
            from fastsource.benchmark.peers_suite import run_peers

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
            for fast, other in COMPARISONS:
                if fast in readers and other in readers:
                    paired = paired_ratio(readers[fast], readers[other])
                    print(f"- {fast} / {other}: {medians[fast][0] / medians[other][0]:.2f}x whole process, "
                          f"{medians[fast][1] / medians[other][1]:.2f}x connect to end (ratio of medians); "
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
