"""The split reader (Flink's SplitReader) and what one fetch returns. A split reader is used by exactly one
fetcher thread, which owns it: every call below runs there."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Optional, Protocol

import pyarrow as pa

from fastsource.base.split import Split


@dataclass
class RecordsWithSplitIds:
    """One fetch: a batch of raw records (or None), how far each split got, and finished splits."""

    batch: Optional[pa.RecordBatch]
    progress: list[tuple[str, int, int, int, int]] = field(default_factory=list)
    finished_splits: list[str] = field(default_factory=list)

    def is_empty(self) -> bool:
        return self.batch is None and not self.finished_splits


class SplitReader(Protocol):
    """Reads the splits it holds, one fetch at a time (the Kafka implementation owns a consumer)."""

    def fetch(self) -> RecordsWithSplitIds:
        """The next batch of raw records with each split's progress; may block until `wake_up()`."""

    def add_splits(self, splits: Iterable[Split]) -> None: ...

    def remove_splits(self, split_ids: Iterable[str]) -> None: ...

    def pause_or_resume_splits(self, pause: Iterable[str], resume: Iterable[str]) -> None: ...

    def observe(self) -> dict[str, Any]:
        """Local facts the fetcher thread records after each fetch for metrics (no request)."""

    def wake_up(self) -> None:
        """Interrupt a blocking `fetch()` (any thread)."""

    def close(self) -> None: ...
