"""The Ray benchmark: `fastsource.ray.read_kafka` against `ray.data.read_kafka` on one running local Ray.

    fastsource bench --ray [--full]               # quick by default (100 k messages, 1 round)
    python -m fastsource.benchmark.ray_bench --full

Both readers (and fastsource without the headers column) read the same topic (100-byte values, 4
partitions) in rotating order each round; a read is `read_kafka(...).materialize()`, timed from the
call (planning included) to the materialized dataset, on a Ray started once beforehand (its start-up
is not timed; one small read of each warms the workers). Then one 1-partition topic is read by
fastsource with 4 read tasks and with 1. CPU is the CPU time (user + system) that this process tree
(the driver, GCS, raylet, workers) and, apart from it, the local broker's JVM spent during a read: on a
machine that runs the broker too, rows/s are bounded by the CPU all of them need per row.

Memory is measured apart, at the end: each reader reads once more on a Ray of its own (long-lived
workers and the object store keep memory they once took, whichever reader ran), while a thread samples
every 50 ms the summed PSS (proportional set size: shared object-store pages counted once) of this
process and every process under it (not the local broker), and its anonymous part (the processes'
private memory); `materialize()` holds the whole dataset in the object store. Sampling is kept out of
the timed rounds: reading smaps_rollup of processes that map the object store costs ~16 ms of CPU per
sample here, a third of a core at one sample per 50 ms.

With `--floor`, Ray Data's own cost is measured first: `materialize()` of a datasource whose 4 read
tasks do nothing but spend a fixed CPU time each and return one row, on the same Ray; no reader can
finish 4 tasks of that CPU time faster.
"""
from __future__ import annotations

import argparse
import contextlib
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
    """Every process's children, from /proc."""
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
    total = anon = 0
    for pid in _tree(root, exclude):
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


def _tree(root: int, exclude: frozenset[int]) -> list[int]:
    """`root` and its descendants, but the `exclude`d ones and theirs."""
    tree, todo, found = _children(), [root], []
    while todo:
        pid = todo.pop()
        if pid not in exclude:
            found.append(pid)
            todo.extend(tree.get(pid, []))
    return found


def cpu_s(pids: list[int]) -> float:
    """CPU time (user + system) the processes `pids` have spent so far, in seconds (processes that
    ended count 0)."""
    ticks = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            continue
    return ticks / os.sysconf("SC_CLK_TCK")


class CpuTime:
    """CPU seconds spent while the `with` block runs by this process tree (`ray`, without the
    `exclude`d processes) and by the `exclude`d ones (`broker`). Processes that end meanwhile are
    not counted; Ray's workers, raylet and GCS live on."""

    def __init__(self, exclude: frozenset[int]) -> None:
        self.exclude = exclude
        self.ray = self.broker = 0.0

    def _sample(self) -> tuple[dict[int, float], float]:
        return ({pid: cpu_s([pid]) for pid in _tree(os.getpid(), self.exclude)},
                cpu_s(list(self.exclude)))

    def __enter__(self) -> "CpuTime":
        self._before = self._sample()
        return self

    def __exit__(self, *exc_info: object) -> None:
        (tree_before, broker_before), (tree_after, broker_after) = self._before, self._sample()
        self.ray = sum(spent - tree_before.get(pid, 0.0) for pid, spent in tree_after.items())
        self.broker = broker_after - broker_before


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


Run = tuple[float, float, float, float, float]


def timed_read(read: Callable[[], object], expected: int, exclude: frozenset[int],
               sample_memory: bool = False) -> Run:
    """(seconds, peak tree PSS MB, peak tree anonymous PSS MB, CPU s of the Ray process tree, CPU s
    of the broker) of `read().materialize()`, memory 0 unless sampled; fails unless the dataset holds
    `expected` rows."""
    memory = PeakMemory(exclude) if sample_memory else contextlib.nullcontext()
    with memory, CpuTime(exclude) as cpu:
        started = time.perf_counter()
        dataset = read().materialize()
        seconds = time.perf_counter() - started
    rows = dataset.count()
    del dataset
    gc.collect()  # the blocks' object references go now, not at some later collection
    if rows != expected:
        raise SystemExit(f"a read returned {rows} rows instead of {expected}")
    if isinstance(memory, PeakMemory):
        return seconds, memory.peak, memory.peak_anon, cpu.ray, cpu.broker
    return seconds, 0.0, 0.0, cpu.ray, cpu.broker


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
               label: str, exclude: frozenset[int]) -> dict[str, list[Run]]:
    results: dict[str, list[Run]] = {name: [] for name in readers}
    for round_ in range(rounds):
        names = list(readers)
        names = names[round_ % len(names):] + names[:round_ % len(names)]
        for name in names:
            run = timed_read(readers[name], expected, exclude)
            results[name].append(run)
            seconds, _, _, cpu_ray, cpu_broker = run
            print(f"  round {round_ + 1} {label:10} {name:50} {expected / seconds:>10,.0f} rows/s  "
                  f"CPU {cpu_ray:.1f} s (Ray tree) + {cpu_broker:.1f} s (broker)", flush=True)
    return results


def report(title: str, expected: int, results: dict[str, list[Run]],
           comparisons: list[tuple[str, str]]) -> None:
    print(f"### {title}")
    print()
    print("| reader | rows/s | seconds | CPU s, Ray process tree | CPU s, broker | CPU µs per row, "
          "both |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, runs in results.items():
        seconds = statistics.median(r[0] for r in runs)
        cpu_ray, cpu_broker = statistics.median(r[3] for r in runs), statistics.median(r[4] for r in runs)
        print(f"| {name} | {expected / seconds:,.0f} | {seconds:.2f} | {cpu_ray:.1f} | {cpu_broker:.1f} | "
              f"{(cpu_ray + cpu_broker) / expected * 1e6:.2f} |")
    print()
    print("(medians over the rounds)")
    print()
    for fast, slow in comparisons:
        paired = statistics.median(s[0] / f[0] for f, s in zip(results[fast], results[slow]))
        cpu = statistics.median((s[3] + s[4]) / (f[3] + f[4]) for f, s in zip(results[fast], results[slow]))
        print(f"- {fast} / {slow}: {paired:.2f}x rows/s; {slow} spent {cpu:.2f}x the CPU time (Ray tree "
              "+ broker; medians of the per-round ratios)")
    print()


def cpu_floor_datasource(tasks: int, cpu_s_per_task: float) -> "object":
    """A Ray Data datasource of `tasks` read tasks that each spend `cpu_s_per_task` of CPU time and
    return one row: what Ray Data itself costs around read tasks of that size."""
    import pyarrow as pa
    from ray.data.block import BlockMetadata
    from ray.data.datasource import Datasource, ReadTask

    def burn() -> list:
        end = time.thread_time() + cpu_s_per_task
        while time.thread_time() < end:
            pass
        return [pa.table({"n": [1]})]

    class CpuFloor(Datasource):
        def estimate_inmemory_data_size(self) -> None:
            return None

        def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None,
                           data_context: object = None) -> list:
            metadata = BlockMetadata(num_rows=1, size_bytes=None, exec_stats=None, input_files=None)
            return [ReadTask(burn, metadata) for _ in range(tasks)]

    return CpuFloor()


def floor(cpu_per_task: list[float], rounds: int) -> None:
    """Ray Data's own cost: `materialize()` of 4 read tasks that only spend CPU, on the running Ray."""
    import ray

    print(f"### Ray Data alone: 4 read tasks that only spend CPU, {rounds} round(s)")
    print()
    print("| CPU s per task | seconds (median) | every round | the 4 tasks' CPU spread evenly over "
          "the Ray's CPUs, s |")
    print("|---:|---:|---|---:|")
    cpus = ray.cluster_resources().get("CPU", 1)
    for per_task in cpu_per_task:
        runs = []
        for _ in range(rounds):
            started = time.perf_counter()
            ray.data.read_datasource(cpu_floor_datasource(4, per_task), override_num_blocks=4).materialize()
            runs.append(time.perf_counter() - started)
        print(f"| {per_task:.2f} | {statistics.median(runs):.2f} | {', '.join(f'{r:.2f}' for r in runs)} | "
              f"{4 * per_task / cpus:.2f} |", flush=True)
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
    parser.add_argument("--floor", action="store_true",
                        help="first measure Ray Data alone: 4 read tasks that only spend CPU")
    args = parser.parse_args(argv)
    args.messages = args.messages or (100_000 if args.quick else 2_000_000)
    args.rounds = args.rounds or (1 if args.quick else 5)

    import ray

    import fastsource.ray as fray
    from fastsource.benchmark.harness import PARTITIONS, bench_broker, produce

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
            if args.floor:
                floor([0.0, 0.2, 0.35, 1.0], args.rounds)

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
            fresh: dict[str, Run] = {}
            if own_ray:
                # Long-lived workers keep what their allocators once took, whichever reader ran in them:
                # each reader's memory is measured once more on a Ray of its own.
                for name, read in ((FAST, lambda: fray.read_kafka(topic, bootstrap_servers=bootstrap)),
                                   (RAY, lambda: ray.data.read_kafka(topic, bootstrap_servers=bootstrap))):
                    ray.shutdown()
                    start_ray(args.cpus)
                    fresh[name] = timed_read(read, n, exclude, sample_memory=True)
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
                print("| reader | rows/s (cold workers, memory sampled) | peak PSS of the Ray process "
                      "tree, MB | of which anonymous, MB |")
                print("|---|---:|---:|---:|")
                for name, (seconds, peak, peak_anon, _, _) in fresh.items():
                    print(f"| {name} | {n / seconds:,.0f} | {peak:,.0f} | {peak_anon:,.0f} |")
                print()
        finally:
            if own_ray:
                ray.shutdown()


if __name__ == "__main__":
    main()
