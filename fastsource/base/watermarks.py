"""Event-time watermarks: per split, combined over splits, with idleness and alignment."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterable, Optional

from fastsource.base.split import SplitState
from fastsource.validation import check_bool, check_int

WATERMARK_METADATA_KEY = b"fastsource.watermark"
# The watermark at the end of a bounded input: no record can come any more (Flink's MAX_WATERMARK).
MAX_WATERMARK = (1 << 63) - 1


@dataclass(frozen=True)
class WatermarkStrategy:
    """How the stream's watermark is derived from record timestamps.

    A split's watermark is the largest timestamp it has emitted minus `out_of_orderness_ms`. The
    stream's watermark is the minimum over splits, never moves back, and is None until every active
    split has emitted a record. A split that emitted nothing for `idle_timeout_ms` stops holding it
    back (None: never). With `alignment_max_drift_ms`, splits whose watermark runs more than that
    ahead of the stream's are paused until it catches up. `emit_in_metadata` puts the watermark into
    each batch's schema metadata under `fastsource.watermark`.
    """

    out_of_orderness_ms: int = 0
    idle_timeout_ms: Optional[int] = None
    alignment_max_drift_ms: Optional[int] = None
    emit_in_metadata: bool = False

    def __post_init__(self) -> None:
        check_int("out_of_orderness_ms", self.out_of_orderness_ms, minimum=0)
        for name in ("idle_timeout_ms", "alignment_max_drift_ms"):
            check_int(name, getattr(self, name), minimum=0, optional=True)
        check_bool("emit_in_metadata", self.emit_in_metadata)


class WatermarkTracker:
    """Combines split watermarks into the stream's and tells which splits are idle.
    Fed the readers' split states; runs on the thread that consumes the stream."""

    def __init__(self, strategy: WatermarkStrategy,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.strategy = strategy
        self._clock = clock
        self.watermark: Optional[int] = None

    def split_watermark(self, state: SplitState) -> Optional[int]:
        if state.max_timestamp is None:
            return None
        return state.max_timestamp - self.strategy.out_of_orderness_ms

    def is_idle(self, state: SplitState) -> bool:
        timeout = self.strategy.idle_timeout_ms
        if timeout is None or state.paused:
            return False
        return (self._clock() - state.last_activity) * 1000 >= timeout

    def update(self, states: Iterable[SplitState]) -> Optional[int]:
        """The stream's watermark after taking the current split states into account."""
        lowest = None
        for state in states:
            if self.is_idle(state):
                continue
            mark = self.split_watermark(state)
            if mark is None:
                return self.watermark  # an active split that emitted nothing holds the watermark
            lowest = mark if lowest is None else min(lowest, mark)
        if lowest is not None and (self.watermark is None or lowest > self.watermark):
            self.watermark = lowest
        return self.watermark

    def end_of_input(self) -> int:
        """A bounded input ended: every event time is complete, so the watermark goes to the end
        (as Flink emits its maximum watermark at the end of input)."""
        self.watermark = MAX_WATERMARK
        return self.watermark
