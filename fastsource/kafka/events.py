"""Kafka's own events between its enumerator and its readers (carried in a `SourceEventWrapper`)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SplitsRemovedEvent:
    """Custom event from the Kafka enumerator: these partitions were deleted; end their splits."""
    partitions: tuple[tuple[str, int], ...] = field(default_factory=tuple)
