"""fastsource against what users would pick instead: Flink's KafkaSource, Ray Data's read_kafka, aiokafka,
confluent-kafka plus pyarrow and a plain librdkafka consumer (`fastsource bench --peers`).

Same topics, same broker, each reader in a process of its own, order rotated each round (the suite's
runner); every peer that cannot be set up here is reported as unavailable and the others run. Peers
use their own client defaults (what a user gets), except the suite's baselines (a) and (b), which share
fastsource's fetch settings.
"""
from __future__ import annotations

import json
import platform
import sys
from importlib import metadata
from pathlib import Path

from fastsource.benchmark import harness
from fastsource.benchmark.peers import flink_peer as flink

HERE = Path(__file__).resolve().parent / "peers"


def _missing(package: str) -> str | None:
    """Why a peer's Python package cannot be used, or None."""
    try:
        metadata.version(package)
    except metadata.PackageNotFoundError:
        return f"unavailable: {package} is not installed (pip install 'fastsource[bench]')"
    return None


def _version(package: str) -> str:
    """"name version" of an installed package, for the table's header."""
    try:
        return f"{package} {metadata.version(package)}"
    except metadata.PackageNotFoundError:
        return f"{package} not installed"


def _cases(bootstrap: str, topics: dict[str, str], exe: Path, readers: int,
           unavailable: dict[str, str]) -> dict[str, dict[str, list[str]]]:
    """Commands of every reader of the two cases; readers that cannot run go to `unavailable`."""
    parts = str(harness.PARTITIONS)
    py = [sys.executable, str(harness.HERE / "readers.py")]
    raw, js = topics["100b"], topics["json"]
    many = [] if readers == 1 else [readers]
    cases: dict[str, dict[str, list[str]]] = {"100b": {}, "json": {}}
    for n in [1, *many]:
        label = f"{n} reader{'s' if n > 1 else ''}" + (" (default)" if n == readers else "")
        cases["100b"][f"fastsource, {label}"] = py + ["fastsource", bootstrap, raw, parts, str(n)]
        cases["json"][f"fastsource Json(schema), {label}"] = py + ["fastsource-json", bootstrap, js, parts,
                                                                   str(n)]
    cases["100b"][harness.A] = [str(exe), bootstrap, raw, parts, "1"]
    cases["100b"][harness.B] = py + ["confluent", bootstrap, raw, parts]
    cases["json"][f"confluent-kafka + {harness.JSON_PY}"] = py + ["python-json", bootstrap, js, parts]

    aio = [sys.executable, str(HERE / "aiokafka_peer.py"), bootstrap]
    cases["100b"]["aiokafka + pyarrow"] = aio + [raw, parts, "raw"]
    cases["json"][f"aiokafka + {harness.JSON_PY}"] = aio + [js, parts, "json"]
    for name in ("aiokafka + pyarrow", f"aiokafka + {harness.JSON_PY}"):
        if _missing("aiokafka"):
            unavailable[name] = _missing("aiokafka")

    ray = "Ray Data read_kafka, materialized (num_cpus=2)"
    cases["100b"][ray] = [sys.executable, str(HERE / "ray_peer.py"), bootstrap, raw]
    if _missing("ray"):
        unavailable[ray] = _missing("ray")

    try:
        classpath = flink.prepare()
        reason = None
    except flink.Unavailable as exc:
        classpath, reason = "", f"unavailable: {exc}"
    for p in (1, 2):
        for case, topic, kind, what in (("100b", raw, "raw", "byte[] values"),
                                        ("json", js, "json", "Jackson to a POJO")):
            name = f"Flink KafkaSource, {what}, parallelism {p}"
            cases[case][name] = flink.command(classpath, bootstrap, topic, p, kind)
            if reason:
                unavailable[name] = reason
    return cases


def _table(case: str, runs: dict[str, list[dict]], n: int, failures: dict[str, str]) -> list[str]:
    """One case as Markdown: medians, memory, ratios to fastsource, then the figures of every round."""
    names = list(runs)
    reference = names[0]
    default = next((name for name in names if name.endswith("(default)")), reference)
    refs = [reference] if default == reference else [reference, default]
    lines = [f"### {case}", "",
             "| reader | records/s, whole process | records/s, from first record | whole process, s "
             "| first record to end, s | peak RSS MB, process tree | peak PSS MB, process tree "
             + "".join(f"| time ÷ time of {ref} (whole / from first) " for ref in refs) + "|",
             "|---|---:|---:|---:|---:|---:|---:" + "|---:" * len(refs) + "|"]
    for name in names:
        if not runs[name]:
            lines.append(f"| {name} | {failures.get(name, 'unavailable: no run')} |" + " |" * (5 + len(refs)))
            continue
        # A reader that failed in a later round keeps the figures of the rounds it completed.
        label = f"{name} ({len(runs[name])} round(s); then {failures[name]})" if name in failures else name
        wall = harness.median_of(runs[name], "wall_seconds")
        first = harness.median_of(runs[name], "seconds_from_first")
        ratios = []
        for ref in refs:
            if runs[ref]:
                ratios.append(f"{harness.paired_ratio(runs[ref], runs[name]):.2f}x / "
                              f"{harness.paired_ratio(runs[ref], runs[name], 'seconds_from_first'):.2f}x")
            else:
                ratios.append("")
        lines.append(f"| {label} | {n / wall:,.0f} | {n / first:,.0f} | {wall:.2f} | {first:.2f} "
                     f"| {harness.median_of(runs[name], 'tree_rss_mb'):,.0f} "
                     f"| {harness.median_of(runs[name], 'tree_pss_mb'):,.0f} | " + " | ".join(ratios) + " |")
    lines += ["", "Every round (in order; rounds separated by `;`), records/s whole process / from first "
              "record:", ""]
    for name in names:
        if runs[name]:
            rounds = "; ".join(f"{n / r['wall_seconds']:,.0f} / {n / r['seconds_from_first']:,.0f}"
                               for r in runs[name])
            lines.append(f"- {name}: {rounds}")
    lines.append("")
    return lines


def run_peers(bootstrap: str, n: int, rounds: int, exe: Path, markdown: Path | None,
              chart: Path | None = None) -> None:
    """Produce the two topics (unless present), run every reader `rounds` times, print the tables
    (and write them to `markdown`, and draw them to `chart`, when given)."""
    import fastsource

    readers = fastsource.default_parallelism()
    topics = {"100b": f"bench-100b-{n}", "json": f"bench-json-{n}"}
    print(f"broker {bootstrap}; producing ...", flush=True)
    harness.produce(bootstrap, topics["100b"], n, "100b")
    harness.produce(bootstrap, topics["json"], n, "json")
    failures: dict[str, str] = {}
    cases = _cases(bootstrap, topics, exe, readers, failures)
    for name, reason in failures.items():
        print(f"  {name}: {reason}", flush=True)
    results = harness.run_rounds(cases, rounds, n, failures, timeout=120 + n / 10_000)

    lines = [f"## Peers: {n:,} records per case, {harness.PARTITIONS} partitions, {rounds} round(s), median", "",
             f"Versions: fastsource {_version('fastsource').split()[-1]} (default parallelism {readers}), "
             f"{_version('confluent-kafka')}, {_version('pyarrow')}, {_version('aiokafka')}, "
             f"{_version('ray')}, "
             f"{flink.versions()}; Python {platform.python_version()}. "
             "\"time ÷ time of fastsource\": median of the per-round ratios (above 1: fastsource is faster); "
             "memory: peak over samples (every 50 ms, sparser when a sample costs over 1 ms: at most ~2% of a "
             "core) of the sum over the reader's process tree.", ""]
    for case, runs in results.items():
        lines += _table(case, runs, n, failures)
    text = "\n".join(lines)
    print()
    print(text)
    if markdown is not None:
        markdown.write_text(text + "\n")
        raw = markdown.with_suffix(".json")
        raw.write_text(json.dumps({"records": n, "rounds": rounds, "results": results, "failures": failures},
                                  indent=1))
        print(f"written to {markdown} (every run's figures: {raw})")
    if chart is not None:
        from fastsource.benchmark.chart import parse_peers_tables, write_chart

        write_chart(parse_peers_tables(text), chart,
                    f"{n:,} records, {harness.PARTITIONS} partitions, median of {rounds} round(s)")
        print(f"chart written to {chart}")
