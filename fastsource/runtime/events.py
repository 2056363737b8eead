"""Events between readers and the coordinator (FLIP-27's operator events), as plain dataclasses."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastsource.split import KafkaPartitionSplit


@dataclass(frozen=True)
class ReaderRegistrationEvent:
    """A reader is up and can take splits."""
    reader_id: int


@dataclass(frozen=True)
class RequestSplitEvent:
    """A reader asks for more work (Kafka's enumerator pushes splits and ignores it)."""
    reader_id: int
    hostname: str | None = None


@dataclass(frozen=True)
class ReaderFailedEvent:
    """A reader went away; the splits it held since the last checkpoint go back to the enumerator."""
    reader_id: int
    splits: tuple[KafkaPartitionSplit, ...] = ()


@dataclass(frozen=True)
class AddSplitEvent:
    """Splits assigned to the receiving reader."""
    splits: tuple[KafkaPartitionSplit, ...]


@dataclass(frozen=True)
class NoMoreSplitsEvent:
    """The enumerator will not assign the receiving reader anything more."""


@dataclass(frozen=True)
class SourceEventWrapper:
    """A custom event between the enumerator and a reader, in either direction."""
    event: Any
    reader_id: int | None = None


@dataclass(frozen=True)
class CheckpointBarrier:
    """Sent to every reader right after the enumerator's snapshot: a reader's snapshot covers the
    events before the barrier, so a split is either in the enumerator's state or in a reader's."""
    checkpoint_id: int


@dataclass(frozen=True)
class SplitsRemovedEvent:
    """Custom event from the Kafka enumerator: these partitions were deleted; end their splits."""
    split_ids: tuple[str, ...] = field(default_factory=tuple)
