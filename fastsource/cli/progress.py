"""A one-line progress display for terminals: records written, their size, rate and remaining lag per
topic."""
from __future__ import annotations

import sys
import time
from collections import defaultdict
from typing import Any, TextIO


class Progress:
    """Counts what the output was given (`wrote`) and redraws at most every `interval` seconds on
    `out`, only when `out` is a terminal. Records fetched but not written (a `--limit` cut, batches
    still on their way) are not counted: the line agrees with the summary printed at the end."""

    def __init__(self, out: TextIO = sys.stderr, interval: float = 0.5, enabled: bool | None = None) -> None:
        self.out = out
        self.interval = interval
        self.enabled = out.isatty() if enabled is None else enabled
        self.records = 0
        self.bytes = 0
        self._last = 0.0
        self._started = time.monotonic()

    def wrote(self, batch: Any) -> None:
        """`batch` went to the output."""
        self.records += batch.num_rows
        self.bytes += batch.nbytes

    def update(self, metrics: dict[str, Any], force: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not force and now - self._last < self.interval):
            return
        self._last = now
        lag: dict[str, int] = defaultdict(int)
        for split_id, split in metrics["splits"].items():
            lag[split_id.rsplit("-", 1)[0]] += split["pending_records"] or 0
        rate = self.records / max(now - self._started, 1e-9)
        lags = ", ".join(f"{topic} {n:,}" for topic, n in sorted(lag.items())) or "-"
        self.out.write(f"\r{self.records:,} records  {self.bytes / 1e6:,.1f} MB  "
                       f"{rate:,.0f} rec/s  lag: {lags}\x1b[K")
        self.out.flush()

    def finish(self, metrics: dict[str, Any]) -> None:
        if self.enabled:
            self.update(metrics, force=True)
            self.out.write("\n")
            self.out.flush()
