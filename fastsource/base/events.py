"""Messages between readers and the coordinator (FLIP-27's operator events): plain, picklable
dataclasses, the only things that cross a transport."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from fastsource.base.split import Split


@dataclass(frozen=True)
class ReaderRegistrationEvent:
    """A reader is up and can take splits."""
    reader_id: int


@dataclass(frozen=True)
class AddSplitEvent:
    """Splits assigned to the receiving reader."""
    splits: tuple[Split, ...]


@dataclass(frozen=True)
class NoMoreSplitsEvent:
    """The enumerator will not assign the receiving reader anything more."""


@dataclass(frozen=True)
class SourceEventWrapper:
    """A custom event between the enumerator and a reader, in either direction."""
    event: Any
    reader_id: int | None = None


@dataclass(frozen=True)
class ReportedWatermarkEvent:
    """A reader's watermark (Flink's ReportedWatermarkEvent): the minimum over its active splits,
    None while one of them has emitted nothing; `active` is False when it holds no active split."""
    reader_id: int
    watermark: Optional[int]
    active: bool = True


@dataclass(frozen=True)
class WatermarkAlignmentEvent:
    """The coordinator's alignment decision (Flink's WatermarkAlignmentEvent): splits whose watermark
    is above `max_watermark` pause until it catches up; None resumes every split."""
    max_watermark: Optional[int]


@dataclass(frozen=True)
class ReaderFailedEvent:
    """A reader is gone (driver side, through the coordinator's mailbox): the splits it held go back
    to the enumerator, each resuming at `positions[split_id]` when given (the hand-over position)."""
    reader_id: int
    positions: dict[str, int] = field(default_factory=dict)
