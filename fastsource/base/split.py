"""What the base knows of a split and of a reader's state of it (Flink's SourceSplit): an id that never
changes, a position to start from, and a state that advances as records are handed out. The Kafka layer's
`KafkaPartitionSplit` and `KafkaPartitionSplitState` are the implementations."""
from __future__ import annotations

from typing import Optional, Protocol


class Split(Protocol):
    """A unit of work: immutable, picklable, identified by `split_id`, starting at `starting_offset`."""

    @property
    def split_id(self) -> str: ...

    @property
    def starting_offset(self) -> int: ...

    def with_starting_offset(self, offset: int) -> "Split":
        """The same split (same id) resuming at `offset`."""


class SplitState(Protocol):
    """A reader's mutable view of one split: the next position to hand out, the largest event time and
    the counts handed out so far, when it last emitted, and whether watermark alignment paused it."""

    split: Split
    current_offset: int
    max_timestamp: Optional[int]
    records: int
    bytes: int
    last_activity: float
    paused: bool

    @property
    def split_id(self) -> str: ...

    def advance(self, next_offset: int, max_timestamp: int, records: int, nbytes: int) -> None:
        """Account for one handed-out batch's records of this split."""

    def to_split(self) -> Split:
        """The split that resumes right after the records handed out so far."""
