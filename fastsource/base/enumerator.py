"""The split enumerator and its context (Flink's SplitEnumerator / SplitEnumeratorContext): the
enumerator decides which reader reads which split; the coordinator runs it on one thread and serves as
its context. Every method of both runs on the coordinator's thread, so an enumerator needs no locks."""
from __future__ import annotations

from typing import Any, Callable, Optional, Protocol

from fastsource.base.split import Split


class SplitEnumeratorContext(Protocol):
    """What the enumerator may ask of the coordinator that runs it."""

    def current_parallelism(self) -> int: ...

    def registered_readers(self) -> set[int]: ...

    def assign_splits(self, assignment: dict[int, list[Split]]) -> None: ...

    def signal_no_more_splits(self, reader_id: int) -> None: ...

    def send_event_to_reader(self, reader_id: int, event: Any) -> None: ...

    def call_async(self, callable_: Callable[[], Any], handler: Callable[[Any, Optional[BaseException]], None],
                   initial_delay_ms: int = 0, period_ms: int = 0) -> None:
        """Run `callable_` off the coordinator thread (periodically if `period_ms` > 0), then
        `handler(result, error)` on the coordinator thread."""


class SplitEnumerator(Protocol):
    """Discovers splits and assigns them to readers (pushing them: readers never ask)."""

    def start(self) -> None:
        """Begin discovery (its I/O goes through `context.call_async`)."""

    def add_reader(self, reader_id: int) -> None:
        """A reader registered and can take splits."""

    def handle_source_event(self, reader_id: int, event: Any) -> None:
        """A custom event from a reader."""

    def add_splits_back(self, splits: list[Split], reader_id: int) -> None:
        """Splits of a failed reader, at their hand-over positions, to assign again."""

    def snapshot_state(self, checkpoint_id: int) -> dict[str, Any]:
        """The enumerator's checkpoint state (JSON-ready): splits not yet assigned among it."""

    def close(self) -> None:
        """Release what the enumerator holds."""
