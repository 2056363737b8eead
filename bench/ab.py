"""Before/after of fastsource's read path between two builds of the repository, under the same load:
`python bench/ab.py BEFORE_DIR AFTER_DIR [--rounds 5] [--messages 1000000] [--port 29518]`.

Each directory is a checkout with its compiled units built in place (`python setup.py build_ext
--inplace`); a reader process imports fastsource from it (PYTHONPATH). The topics (100-byte, 1 KB and
JSON records, 4 partitions) are produced once on one local broker, and each round runs the
one-reader read (and `Json(schema)` for the JSON topic) of BEFORE then AFTER, so that both see the
same machine load, which a shared machine changes from minute to minute. Prints the medians of
records/s (connect to end, and whole process) and of records per CPU-second of the reader process
(user + system time: what the code costs, least moved by other processes' load)."""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
from pathlib import Path

from fastsource.benchmark.harness import bench_broker, produce, run_reader

KINDS = ("100b", "1kb", "json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--port", type=int, default=29518)
    args = parser.parse_args()
    n = args.messages
    builds = {"before": args.before.resolve(), "after": args.after.resolve()}
    results: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    with bench_broker(None, args.port, "fastsource-ab-") as (bootstrap, _, _):
        topics = {kind: f"ab-{kind}-{n}" for kind in KINDS}
        for kind, topic in topics.items():
            produce(bootstrap, topic, n, kind)
        for round_no in range(args.rounds):
            for build, root in builds.items():
                env = dict(os.environ, PYTHONPATH=str(root))
                for kind, topic in topics.items():
                    impl = "fastsource-json" if kind == "json" else "fastsource"
                    cmd = [sys.executable, str(root / "fastsource" / "benchmark" / "readers.py"), impl,
                           bootstrap, topic, "4", "1"]
                    used = resource.getrusage(resource.RUSAGE_CHILDREN)
                    result = run_reader(cmd, env=env)
                    now = resource.getrusage(resource.RUSAGE_CHILDREN)
                    if result["messages"] != n:
                        raise SystemExit(f"{build} read {result['messages']} of {n} records of {topic}")
                    cpu_s = (now.ru_utime - used.ru_utime) + (now.ru_stime - used.ru_stime)
                    rate, whole, per_cpu = n / result["seconds"], n / result["wall_seconds"], n / cpu_s
                    results.setdefault((kind, build), []).append((rate, whole, per_cpu))
                    print(f"round {round_no} {kind:5} {build:6} {rate:12,.0f} records/s connect to end "
                          f"{whole:12,.0f} whole process {per_cpu:12,.0f} per CPU-second", flush=True)
    print()
    print("| case | before: records/s connect to end (whole process) | after | records per CPU-second, "
          "before | after | after / before: connect to end, per CPU-second |")
    print("|---|---:|---:|---:|---:|---:|")
    for kind in KINDS:
        before, after = results[(kind, "before")], results[(kind, "after")]
        b_rate, b_whole, b_cpu = (statistics.median(run[i] for run in before) for i in range(3))
        a_rate, a_whole, a_cpu = (statistics.median(run[i] for run in after) for i in range(3))
        print(f"| {kind} | {b_rate:,.0f} ({b_whole:,.0f}) | {a_rate:,.0f} ({a_whole:,.0f}) | {b_cpu:,.0f} | "
              f"{a_cpu:,.0f} | {a_rate / b_rate:.2f}x, {a_cpu / b_cpu:.2f}x |")


if __name__ == "__main__":
    main()
