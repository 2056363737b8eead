"""Range planning: cutting bounded partitions into offset ranges so that one partition can be read by
several readers (or Ray read tasks) at once.

The semantics are those of Spark's Kafka offset-range calculator: `max_records_per_split` first cuts
every partition's range into equal pieces of at most that many offsets; `min_splits` then cuts the
largest ranges further, in proportion to their size, until there are at least that many. Ranges of one
partition are contiguous, never empty, and cover the partition's range exactly.
"""
from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from typing import Iterable, Optional

from fastsource.errors import ConfigError


@dataclass(frozen=True, order=True)
class OffsetRange:
    """Offsets `start` (inclusive) to `stop` (exclusive) of one partition."""

    topic: str
    partition: int
    start: int
    stop: int

    @property
    def size(self) -> int:
        return self.stop - self.start


def _equal_pieces(rng: OffsetRange, parts: int) -> list[OffsetRange]:
    """`rng` cut into `parts` contiguous pieces whose sizes differ by at most one."""
    pieces, start = [], rng.start
    for i in range(parts):
        stop = start + (rng.stop - start) // (parts - i)
        pieces.append(OffsetRange(rng.topic, rng.partition, start, stop))
        start = stop
    return pieces


def check_positive(name: str, value: Optional[int]) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise ConfigError(f"{name} must be a positive integer or None, not {value!r}")


def plan_ranges(partitions: Iterable[OffsetRange], max_records_per_split: Optional[int] = None,
                min_splits: Optional[int] = None) -> list[OffsetRange]:
    """Cut each partition's `[start, stop)` into ranges (see the module docstring).

    A partition with nothing to read (`start >= stop`) stays one range: its split finishes at once.
    The result is sorted by topic, partition and start offset.
    """
    check_positive("max_records_per_split", max_records_per_split)
    check_positive("min_splits", min_splits)
    ranges: list[OffsetRange] = []
    for rng in partitions:
        if rng.size <= 0 or max_records_per_split is None or rng.size <= max_records_per_split:
            ranges.append(rng)
        else:
            ranges.extend(_equal_pieces(rng, math.ceil(rng.size / max_records_per_split)))
    if min_splits is not None and len(ranges) < min_splits:
        ranges = _spread(ranges, min_splits)
    return sorted(ranges)


def _spread(ranges: list[OffsetRange], min_splits: int) -> list[OffsetRange]:
    """Cut the ranges at least `1/min_splits` of the total in proportion to their size, then halve the
    largest range while there are fewer than `min_splits` and one has two offsets or more."""
    total = sum(max(0, r.size) for r in ranges)
    if total == 0:
        return ranges
    result: list[OffsetRange] = []
    for rng in ranges:
        if rng.size * min_splits >= total:
            result.extend(_equal_pieces(rng, max(1, min(rng.size, round(rng.size * min_splits / total)))))
        else:
            result.append(rng)
    heap = [(-r.size, r) for r in result]
    heapq.heapify(heap)
    while len(heap) < min_splits and -heap[0][0] >= 2:
        _, largest = heapq.heappop(heap)
        for piece in _equal_pieces(largest, 2):
            heapq.heappush(heap, (-piece.size, piece))
    return [r for _, r in heap]
