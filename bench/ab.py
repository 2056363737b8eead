"""Before/after of fastsource's read path between two builds of the repository, under the same load:
`python bench/ab.py BEFORE_DIR AFTER_DIR [--rounds 5] [--messages 1000000] [--port 29518] [--registry]`.

Each directory is a checkout with its compiled units built in place (`python setup.py build_ext
--inplace`); a reader process imports fastsource from it (PYTHONPATH). The topics are produced once
on one local broker, and each round runs every reader of BEFORE then AFTER, so that both see the
same machine load, which a shared machine changes from minute to minute.

Default cases: the one-reader read of 100-byte, 1 KB and JSON records (`Json(schema)` for the last).
With --registry: the topics of `fastsource bench --registry` (6-field and wide Avro and Protobuf
records from a local Schema Registry, or --schema-registry), each read with its format and as Binary,
and the format's records/s as a fraction of the Binary read's of the same build (issue 17's 0.6x).

Prints the medians of records/s (connect to end, from the first record and whole process) and of
records per CPU-second of the reader process (user + system time: what the code costs, least moved
by other processes' load)."""
from __future__ import annotations

import argparse
import contextlib
import os
import resource
import statistics
import sys
from pathlib import Path
from typing import Iterator, Optional

from fastsource.benchmark import registry_bench
from fastsource.benchmark.harness import PARTITIONS, bench_broker, produce, run_reader

KINDS = ("100b", "1kb", "json")
MEASURES = ("connect to end", "from first record", "whole process", "per CPU-second")


@contextlib.contextmanager
def registry(url: Optional[str], port: int) -> Iterator[str]:
    """The Schema Registry of the --registry cases: `url`, else a local one on `port` for the run."""
    from fastsource.registry import LocalRegistry

    if url is not None:
        yield url
        return
    local = LocalRegistry(port=port)
    try:
        yield local.start()
    finally:
        local.stop()
        local.wipe()


def readers(bootstrap: str, n: int, registry_url: Optional[str]) -> dict[str, list[str]]:
    """Produce the topics; the reader arguments (after readers.py) of each case."""
    cases: dict[str, list[str]] = {}
    if registry_url is None:
        for kind in KINDS:
            topic = f"ab-{kind}-{n}"
            produce(bootstrap, topic, n, kind)
            cases[kind] = ["fastsource-json" if kind == "json" else "fastsource", bootstrap, topic,
                           str(PARTITIONS), "1"]
        return cases
    for case, serialization, kind in registry_bench.TOPICS:
        topic = f"ab-{case}-{n}"
        registry_bench.produce(bootstrap, registry_url, topic, n, serialization, kind)
        cases[case] = [f"fastsource-{serialization}", bootstrap, topic, str(PARTITIONS), "1", registry_url, kind]
        cases[f"{case} as Binary"] = ["fastsource", bootstrap, topic, str(PARTITIONS), "1"]
    return cases


def median(runs: list[tuple[float, ...]], i: int) -> float:
    return statistics.median(run[i] for run in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--port", type=int, default=29518)
    parser.add_argument("--bootstrap", help="use this cluster instead of a local broker")
    parser.add_argument("--registry", action="store_true", help="the Schema Registry topics (see above)")
    parser.add_argument("--schema-registry", help="with --registry: use this registry instead of a local one")
    args = parser.parse_args()
    n = args.messages
    builds = {"before": args.before.resolve(), "after": args.after.resolve()}
    results: dict[tuple[str, str], list[tuple[float, ...]]] = {}
    with contextlib.ExitStack() as stack:
        bootstrap, _, _ = stack.enter_context(bench_broker(args.bootstrap, args.port, "fastsource-ab-"))
        url = stack.enter_context(registry(args.schema_registry, args.port + 2)) if args.registry else None
        cases = readers(bootstrap, n, url)
        for round_no in range(args.rounds):
            for build, root in builds.items():
                env = dict(os.environ, PYTHONPATH=str(root))
                for case, reader_args in cases.items():
                    cmd = [sys.executable, str(root / "fastsource" / "benchmark" / "readers.py"), *reader_args]
                    used = resource.getrusage(resource.RUSAGE_CHILDREN)
                    result = run_reader(cmd, env=env)
                    now = resource.getrusage(resource.RUSAGE_CHILDREN)
                    if result["messages"] != n:
                        raise SystemExit(f"{build} read {result['messages']} of {n} records in case {case}")
                    cpu_s = (now.ru_utime - used.ru_utime) + (now.ru_stime - used.ru_stime)
                    rates = (n / result["seconds"], n / result["seconds_from_first"],
                             n / result["wall_seconds"], n / cpu_s)
                    results.setdefault((case, build), []).append(rates)
                    print(f"round {round_no} {case:22} {build:6} "
                          + "  ".join(f"{rate:11,.0f} {what}" for rate, what in zip(rates, MEASURES)), flush=True)
    print()
    print("Medians, records/s: connect to end / from first record / whole process; records per CPU-second")
    print()
    print("| case | before | after | per CPU-second, before / after | after / before: from first, whole, "
          "per CPU-second |")
    print("|---|---:|---:|---:|---:|")
    for case in cases:
        before, after = results[(case, "before")], results[(case, "after")]
        b, a = [median(before, i) for i in range(4)], [median(after, i) for i in range(4)]
        print(f"| {case} | {b[0]:,.0f} / {b[1]:,.0f} / {b[2]:,.0f} | {a[0]:,.0f} / {a[1]:,.0f} / {a[2]:,.0f} | "
              f"{b[3]:,.0f} / {a[3]:,.0f} | {a[1] / b[1]:.2f}x, {a[2] / b[2]:.2f}x, {a[3] / b[3]:.2f}x |")
    if args.registry:
        print()
        print("The format's records/s over the Binary read's of the same topic and build (medians of the "
              "per-round ratios; issue 17's goal: >= 0.6x)")
        print()
        print("| case | before: from first, whole process | after: from first, whole process |")
        print("|---|---:|---:|")
        for case in (c for c in cases if not c.endswith(" as Binary")):
            cells = []
            for build in builds:
                pairs = list(zip(results[(case, build)], results[(f"{case} as Binary", build)]))
                cells.append(", ".join(f"{statistics.median(f[i] / b[i] for f, b in pairs):.2f}x" for i in (1, 2)))
            print(f"| {case} | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
