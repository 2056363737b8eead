"""The Ray benchmark: `fastsource.ray.read_kafka` against `ray.data.read_kafka` on one running local Ray.

    fastsource bench --ray [--full]               # quick by default (100 k messages, 1 round)
    python -m fastsource.benchmark.ray_bench --full

Both readers (and fastsource without the headers column) read the same topic (100-byte values, 4
partitions) in rotating order each round; a read is `read_kafka(...).materialize()`, timed from the
call (planning included) to the materialized dataset, on a Ray started once beforehand (its start-up
is not timed; one small read of each warms the workers). Then one 1-partition topic is read by fastsource with 4 read tasks and with 1. Memory is the
peak, while a read runs, of the summed PSS (proportional set size: shared object-store pages are
counted once) of this process and every process under it (GCS, raylet, workers; not the local
broker the benchmark starts), sampled every 50 ms, and of its anonymous part (the processes' private
memory). Long-lived workers and the object store keep memory they once took, whichever reader ran,
so the figures of the rounds grow; at the end each reader reads once more on a Ray of its own, which
gives the memory figures to compare (`materialize()` holds the whole dataset in the object store).
"""
from __future__ import annotations

import argparse
import gc
import logging
import os
import statistics
import tempfile
import threading
import time
from typing import Callable

# The local Ray of the benchmark binds and connects on loopback only (by default Ray swaps 127.0.0.1
# for the host's own address); read when ray is imported.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

RAY = "ray.data.read_kafka"
FAST = "fastsource.ray.read_kafka"
FAST_NO_HEADERS = "fastsource.ray.read_kafka, include_headers=False"
ONE_TASK = "fastsource.ray.read_kafka, 1 task"
FOUR_TASKS = "fastsource.ray.read_kafka, 4 tasks"


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            tree.setdefault(ppid, []).append(int(entry))
    return tree


def tree_pss_mb(root: int, exclude: frozenset[int] = frozenset()) -> tuple[float, float]:
    """Summed PSS, and summed anonymous PSS (process heaps, without the object store's shared
    memory), of `root` and its descendants but the `exclude`d ones and theirs, in MB (processes that
    end meanwhile count 0)."""
    tree, todo, total, anon = _children(), [root], 0, 0
    while todo:
        pid = todo.pop()
        if pid in exclude:
            continue
        todo.extend(tree.get(pid, []))
        try:
            with open(f"/proc/{pid}/smaps_rollup") as rollup:
                for line in rollup:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                    elif line.startswith("Pss_Anon:"):
                        anon += int(line.split()[1])
        except OSError:
            pass
    return total / 1024, anon / 1024


class PeakMemory:
    """Samples `tree_pss_mb(os.getpid(), exclude)` on a thread while the `with` block runs; `peak` and
    `peak_anon` in MB."""

    def __init__(self, exclude: frozenset[int], every_s: float = 0.05) -> None:
        self.exclude = exclude
        self.every_s = every_s
        self.peak = self.peak_anon = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.every_s)

    def _sample(self) -> None:
        total, anon = tree_pss_mb(os.getpid(), self.exclude)
        self.peak, self.peak_anon = max(self.peak, total), max(self.peak_anon, anon)

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


def timed_read(read: Callable[[], object], expected: int,
               exclude: frozenset[int]) -> tuple[float, float, float]:
    """(seconds, peak tree PSS MB, peak tree anonymous PSS MB) of `read().materialize()`; fails
    unless the dataset holds `expected` rows."""
    with PeakMemory(exclude) as memory:
        started = time.perf_counter()
        dataset = read().materialize()
        seconds = time.perf_counter() - started
    rows = dataset.count()
    del dataset
    gc.collect()  # the blocks' object references go now, not at some later collection
    if rows != expected:
        raise SystemExit(f"a read returned {rows} rows instead of {expected}")
    return seconds, memory.peak, memory.peak_anon


def start_ray(cpus: int) -> bool:
    """A local Ray, started from an empty directory (Ray puts the driver's working directory on the
    workers' sys.path: a fastsource source tree there would shadow the installed package). False if
    a Ray was running already (it is used, and left running)."""
    import ray

    if ray.is_initialized():
        return False
    cwd = os.getcwd()
    os.chdir(tempfile.mkdtemp(prefix="fastsource-ray-bench-"))
    try:
        ray.init(num_cpus=cpus, include_dashboard=False, logging_level="WARNING",
                 log_to_driver=False)
    finally:
        os.chdir(cwd)
    ray.data.DataContext.get_current().enable_progress_bars = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    return True


def run_rounds(readers: dict[str, Callable[[], object]], rounds: int, expected: int,
               label: str, exclude: frozenset[int]) -> dict[str, list[tuple[float, float, float]]]:
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in readers}
    for round_ in range(rounds):
        names = list(readers)
        names = names[round_ % len(names):] + names[:round_ % len(names)]
        for name in names:
            seconds, peak, peak_anon = timed_read(readers[name], expected, exclude)
            results[name].append((seconds, peak, peak_anon))
            print(f"  round {round_ + 1} {label:10} {name:50} {expected / seconds:>10,.0f} rows/s  "
                  f"peak PSS {peak:,.0f} MB, anonymous {peak_anon:,.0f} MB", flush=True)
    return results


def report(title: str, expected: int, results: dict[str, list[tuple[float, float, float]]],
           comparisons: list[tuple[str, str]]) -> None:
    print(f"### {title}")
    print()
    print("| reader | rows/s | seconds | peak PSS of the Ray process tree, MB | of which anonymous, "
          "MB |")
    print("|---|---:|---:|---:|---:|")
    for name, runs in results.items():
        seconds = statistics.median(r[0] for r in runs)
        print(f"| {name} | {expected / seconds:,.0f} | {seconds:.2f} | "
              f"{statistics.median(r[1] for r in runs):,.0f} | {statistics.median(r[2] for r in runs):,.0f} |")
    print()
    print("(medians over the rounds)")
    print()
    for fast, slow in comparisons:
        paired = statistics.median(s[0] / f[0] for f, s in zip(results[fast], results[slow]))
        print(f"- {fast} / {slow}: {paired:.2f}x rows/s (median of the per-round ratios)")
    print()


def main(argv: list[str] | None = None, quick_default: bool = False) -> None:
    parser = argparse.ArgumentParser(prog="fastsource bench --ray", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, help="records per topic (2 M; quick: 100 k)")
    parser.add_argument("--rounds", type=int, help="rounds (5; quick: 1)")
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 1, help="CPUs of the local Ray")
    parser.add_argument("--quick", action="store_true", default=quick_default,
                        help="smoke run: 100 k messages, 1 round")
    parser.add_argument("--full", dest="quick", action="store_false", help="the full run")
    parser.add_argument("--bootstrap", help="use this cluster instead of a local broker")
    parser.add_argument("--port", type=int, default=29392)
    args = parser.parse_args(argv)
    args.messages = args.messages or (100_000 if args.quick else 2_000_000)
    args.rounds = args.rounds or (1 if args.quick else 5)

    import ray

    import fastsource.ray as fray
    from fastsource.benchmark.suite import PARTITIONS, bench_broker, produce

    own_ray = False
    with bench_broker(args.bootstrap, args.port, "fastsource-ray-bench-") as (bootstrap, _, broker):
        try:
            n = args.messages
            topic, single = f"bench-ray-100b-{n}", f"bench-ray-100b-1p-{n}"
            print(f"broker {bootstrap}; producing ...", flush=True)
            produce(bootstrap, topic, n, "100b")
            produce(bootstrap, single, n, "100b", partitions=1)
            started = time.perf_counter()
            own_ray = start_ray(args.cpus)
            # The local broker is a child of this process too: its JVM is not part of the Ray tree.
            exclude = frozenset([broker.pid()]) if broker is not None and broker.pid() else frozenset()
            idle, idle_anon = tree_pss_mb(os.getpid(), exclude)
            print(f"  ray.init: {time.perf_counter() - started:.1f} s, {args.cpus} CPUs; idle Ray process tree "
                  f"PSS {idle:,.0f} MB, anonymous {idle_anon:,.0f} MB", flush=True)
            for warm in (fray.read_kafka, ray.data.read_kafka):
                warm(topic, bootstrap_servers=bootstrap, end_offset=1000).materialize()

            versus = run_rounds({
                FAST: lambda: fray.read_kafka(topic, bootstrap_servers=bootstrap),
                RAY: lambda: ray.data.read_kafka(topic, bootstrap_servers=bootstrap),
                FAST_NO_HEADERS: lambda: fray.read_kafka(topic, bootstrap_servers=bootstrap,
                                                         include_headers=False),
            }, args.rounds, n, f"{PARTITIONS} parts", exclude)
            spread = run_rounds({
                FOUR_TASKS: lambda: fray.read_kafka(single, bootstrap_servers=bootstrap, override_num_blocks=4),
                ONE_TASK: lambda: fray.read_kafka(single, bootstrap_servers=bootstrap),
            }, args.rounds, n, "1 part", exclude)
            fresh: dict[str, tuple[float, float, float]] = {}
            if own_ray:
                # Long-lived workers keep what their allocators once took, whichever reader ran in them:
                # each reader's memory is measured once more on a Ray of its own.
                for name, read in ((FAST, lambda: fray.read_kafka(topic, bootstrap_servers=bootstrap)),
                                   (RAY, lambda: ray.data.read_kafka(topic, bootstrap_servers=bootstrap))):
                    ray.shutdown()
                    start_ray(args.cpus)
                    fresh[name] = timed_read(read, n, exclude)
                    print(f"  fresh Ray  {name:50} {n / fresh[name][0]:>10,.0f} rows/s  peak PSS "
                          f"{fresh[name][1]:,.0f} MB, anonymous {fresh[name][2]:,.0f} MB", flush=True)
            print()
            print(f"## Ray results: {n:,} messages of 100 bytes, {args.rounds} round(s), Ray {ray.__version__} "
                  f"with {args.cpus} CPUs")
            print()
            report(f"{PARTITIONS} partitions", n, versus, [(FAST, RAY), (FAST_NO_HEADERS, RAY)])
            report("1 partition", n, spread, [(FOUR_TASKS, ONE_TASK)])
            if fresh:
                print(f"### Memory: one read of the {PARTITIONS}-partition topic on a freshly started Ray each")
                print()
                print("| reader | rows/s (cold workers) | peak PSS of the Ray process tree, MB | of which "
                      "anonymous, MB |")
                print("|---|---:|---:|---:|")
                for name, (seconds, peak, peak_anon) in fresh.items():
                    print(f"| {name} | {n / seconds:,.0f} | {peak:,.0f} | {peak_anon:,.0f} |")
                print()
        finally:
            if own_ray:
                ray.shutdown()


if __name__ == "__main__":
    main()
