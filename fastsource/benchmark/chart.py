"""Bar charts of the peers benchmark: records/s and peak memory per reader, one row of panels per case.

`fastsource bench --peers --chart FILE` writes one from the run it just made; from tables already
written (the `--markdown` output, or bench/RESULTS.md, whose first peers tables are the latest):

    python -m fastsource.benchmark.chart bench/RESULTS.md bench/peers.svg

Needs matplotlib (`pip install 'fastsource[bench]'`). The file type follows the suffix (.svg, .png).
"""
from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

RATE = "records/s, whole process"
FIRST = "records/s, from first record"
MEMORY = "peak RSS MB, process tree"


@dataclass(frozen=True)
class PeerFigures:
    """One reader's medians in one case of the peers tables."""

    reader: str
    records_per_s: float
    records_per_s_from_first: float
    peak_rss_mb: float


def _number(cell: str) -> Optional[float]:
    cell = cell.strip().replace(",", "")
    return float(cell) if re.fullmatch(r"\d+(\.\d+)?", cell) else None


def parse_peers_tables(text: str) -> dict[str, list[PeerFigures]]:
    """The first table of each case (a heading, then a table with the peers columns) in Markdown
    `text`; readers without figures (unavailable peers) are left out."""
    cases: dict[str, list[PeerFigures]] = {}
    heading = None
    columns: Optional[list[str]] = None
    for line in text.splitlines():
        if line.startswith("#"):
            heading, columns = line.lstrip("#").strip(), None
            continue
        if not line.startswith("|") or heading is None:
            columns = None if not line.strip() else columns
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if cells[0] == "reader":
            columns = cells if {RATE, FIRST, MEMORY} <= set(cells) and heading not in cases else None
            if columns is not None:
                cases[heading] = []
            continue
        if columns is None or set(cells[0]) <= {"-", ":"} or len(cells) != len(columns):
            continue
        row = dict(zip(columns, cells))
        figures = [_number(row[name]) for name in (RATE, FIRST, MEMORY)]
        if None not in figures:
            cases[heading].append(PeerFigures(row["reader"], *figures))  # type: ignore[arg-type]
    return {case: rows for case, rows in cases.items() if rows}


def write_chart(cases: dict[str, list[PeerFigures]], path: Path, title: str = "") -> Path:
    """Draw `cases` to `path` (.svg or .png): per case, horizontal bars of records/s (whole process,
    with the rate from the first record as a lighter bar behind it) and of peak RSS. fastsource's bars
    are highlighted. Text stays text in an SVG, so the file is searchable and small."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not cases:
        raise ValueError("no peers figures to draw")
    plt.rcParams.update({"svg.fonttype": "none", "font.size": 9, "svg.hashsalt": "fastsource"})
    heights = [max(1.6, 0.36 * len(rows) + 0.9) for rows in cases.values()]
    figure, axes = plt.subplots(len(cases), 2, figsize=(11, sum(heights) + (0.5 if title else 0)),
                                gridspec_kw={"height_ratios": heights, "width_ratios": [3, 2]},
                                squeeze=False)
    for (case, rows), (rate_axis, memory_axis) in zip(cases.items(), axes):
        names = [row.reader for row in rows][::-1]
        ours = ["#d9480f" if name.startswith("fastsource") else "#4c6ef5" for name in names]
        first = [row.records_per_s_from_first / 1e6 for row in rows][::-1]
        whole = [row.records_per_s / 1e6 for row in rows][::-1]
        rate_axis.barh(names, first, color=ours, alpha=0.3, label="from first record")
        rate_axis.barh(names, whole, color=ours, label="whole process")
        for y, value in enumerate(whole):
            rate_axis.text(value, y, f" {value:.2f}", va="center", fontsize=8)
        rate_axis.set_xlabel("million records/s (more is better)")
        rate_axis.set_title(f"{case}: records/s", loc="left")
        rate_axis.legend(loc="lower right", fontsize=8, frameon=False)
        memory = [row.peak_rss_mb for row in rows][::-1]
        memory_axis.barh(names, memory, color=ours)
        for y, value in enumerate(memory):
            memory_axis.text(value, y, f" {value:,.0f}", va="center", fontsize=8)
        memory_axis.set_yticks([])
        memory_axis.set_xlabel("MB (less is better)")
        memory_axis.set_title(f"{case}: peak RSS of the process tree", loc="left")
        for axis in (rate_axis, memory_axis):
            axis.spines[["top", "right"]].set_visible(False)
            axis.margins(x=0.15)
    if title:
        figure.suptitle(title, x=0.01, ha="left", fontsize=10)
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, metadata={"Date": None} if path.suffix == ".svg" else None)
    plt.close(figure)
    return path


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description="Chart the peers tables of a Markdown file")
    parser.add_argument("markdown", type=Path, help="bench/RESULTS.md or a `--peers --markdown` file")
    parser.add_argument("output", type=Path, help="the chart: .svg or .png")
    parser.add_argument("--title", default="", help="a line above the chart")
    args = parser.parse_args(argv)
    cases = parse_peers_tables(args.markdown.read_text())
    print(f"{write_chart(cases, args.output, args.title)}: {', '.join(cases)}")


if __name__ == "__main__":
    main()
