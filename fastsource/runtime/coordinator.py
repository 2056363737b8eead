"""The source coordinator: owns the enumerator and the split-assignment tracker on one thread, which
takes its work from a mailbox of its own, and reaches the readers only through a transport."""
from __future__ import annotations

import heapq
import itertools
import logging
import queue
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Optional

from fastsource.base.enumerator import SplitEnumerator
from fastsource.base.events import (AddSplitEvent, NoMoreSplitsEvent, ReaderFailedEvent, ReaderRegistrationEvent,
                                    ReportedWatermarkEvent, SourceEventWrapper, WatermarkAlignmentEvent)
from fastsource.base.split import Split
from fastsource.base.transport import Transport

log = logging.getLogger(__name__)


class SplitAssignmentTracker:
    """Who holds which split: recorded when the enumerator assigns, dropped when the stream has
    handed a split's last record out, given back when its reader fails (Flink's tracker)."""

    def __init__(self) -> None:
        self._held: dict[int, dict[str, Split]] = {}

    def record(self, reader_id: int, splits: list[Split]) -> None:
        held = self._held.setdefault(reader_id, {})
        for split in splits:
            held[split.split_id] = split

    def finished(self, split_ids: list[str]) -> None:
        for held in self._held.values():
            for split_id in split_ids:
                held.pop(split_id, None)

    def take_back(self, reader_id: int) -> list[Split]:
        return list(self._held.pop(reader_id, {}).values())

    def assigned(self) -> list[Split]:
        return [split for held in self._held.values() for split in held.values()]


class _Call:
    """Work for the coordinator thread, put in its mailbox by the driver (never sent over a
    transport): `fn` runs there and the future holds its outcome."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn = fn
        self.future: Future = Future()


class _Delivered:
    """A message from a reader, handed to the mailbox by the transport."""

    def __init__(self, event: Any) -> None:
        self.event = event


class SourceCoordinator:
    """Owns the enumerator and the split-assignment tracker. Every enumerator method runs on the
    coordinator's single thread, so the enumerator needs no locks; I/O runs on a worker and its
    result comes back through the mailbox. It also serves as the enumerator's context
    (`SplitEnumeratorContext`) and decides watermark alignment from the watermarks readers report.

    A failure of the enumerator (discovery, offsets) fails the source; a failing call from the
    driver (a snapshot) fails that call only.
    """

    def __init__(self, transport: Transport, parallelism: int,
                 on_failure: Callable[[BaseException], None],
                 alignment_max_drift_ms: Optional[int] = None) -> None:
        self._transport = transport
        self._parallelism = parallelism
        self._on_failure = on_failure
        self._drift = alignment_max_drift_ms
        self._mailbox: "queue.Queue[Any]" = queue.Queue()
        self._registered: set[int] = set()
        self._tracker = SplitAssignmentTracker()
        self._reported: dict[int, ReportedWatermarkEvent] = {}
        self._aligned_to: Optional[int] = None
        self._global_watermark: Optional[int] = None
        self._timers: list[tuple[float, int, Callable[[], Any], Callable, int]] = []
        self._seq = itertools.count()
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fastsource-discovery")
        self._thread = threading.Thread(target=self._run, name="fastsource-coordinator", daemon=True)
        self._running = False
        self.enumerator: Optional[SplitEnumerator] = None
        self.failure: Optional[BaseException] = None
        transport.bind_coordinator(lambda event: self._mailbox.put(_Delivered(event)))

    # ------------------------------------------------------------------ context for the enumerator

    def current_parallelism(self) -> int:
        return self._parallelism

    def registered_readers(self) -> set[int]:
        return set(self._registered)

    def assign_splits(self, assignment: dict[int, list[Split]]) -> None:
        for reader_id, splits in assignment.items():
            if reader_id not in self._registered:
                raise ValueError(f"cannot assign splits to unregistered reader {reader_id}")
            self._tracker.record(reader_id, splits)
            self._transport.send_to_reader(reader_id, AddSplitEvent(tuple(splits)))

    def signal_no_more_splits(self, reader_id: int) -> None:
        self._transport.send_to_reader(reader_id, NoMoreSplitsEvent())

    def send_event_to_reader(self, reader_id: int, event: Any) -> None:
        self._transport.send_to_reader(reader_id, SourceEventWrapper(event, reader_id))

    def call_async(self, callable_: Callable[[], Any], handler: Callable, initial_delay_ms: int = 0,
                   period_ms: int = 0) -> None:
        due = time.monotonic() + initial_delay_ms / 1000.0
        heapq.heappush(self._timers, (due, next(self._seq), callable_, handler, period_ms))

    # ------------------------------------------------------------------ driver-side calls (mailbox)

    def start(self, enumerator: SplitEnumerator) -> None:
        self.enumerator = enumerator
        self._running = True
        self._thread.start()
        self.run_in_coordinator(enumerator.start)

    def run_in_coordinator(self, fn: Callable[[], Any]) -> Future:
        """Run `fn` on the coordinator thread; the future holds its result or error."""
        call = _Call(fn)
        self._mailbox.put(call)
        return call.future

    def snapshot(self, checkpoint_id: int) -> Future:
        """The enumerator's state and the splits assigned to readers (as assigned), taken together
        on the coordinator thread, so every split is in exactly one of them."""
        return self.run_in_coordinator(
            lambda: (self.enumerator.snapshot_state(checkpoint_id), self._tracker.assigned()))

    def splits_finished(self, split_ids: list[str]) -> None:
        """The stream handed these splits' last records out: nobody holds them any more."""
        self.run_in_coordinator(lambda: self._tracker.finished(split_ids))

    def reader_failed(self, event: ReaderFailedEvent) -> Future:
        """A reader is gone: its splits return to the enumerator at the given positions, to be
        assigned again once a reader with its id registers."""
        def fail() -> list[Split]:
            self._registered.discard(event.reader_id)
            self._reported.pop(event.reader_id, None)
            splits = [s.with_starting_offset(event.positions.get(s.split_id, s.starting_offset))
                      for s in self._tracker.take_back(event.reader_id)]
            self.enumerator.add_splits_back(splits, event.reader_id)
            return splits
        return self.run_in_coordinator(fail)

    def close(self) -> None:
        if self._running:
            self._running = False
            self._mailbox.put(_Call(lambda: None))
            self._thread.join(timeout=30)
        self._worker.shutdown(wait=True, cancel_futures=True)
        if self.enumerator is not None:
            self.enumerator.close()

    # ------------------------------------------------------------------ the coordinator thread

    def _run(self) -> None:
        while self._running:
            timeout = None
            if self._timers:
                timeout = max(0.0, self._timers[0][0] - time.monotonic())
            try:
                item = self._mailbox.get(timeout=timeout)
            except queue.Empty:
                item = None
            try:
                if isinstance(item, _Call):
                    self._run_call(item)
                elif isinstance(item, _AsyncDone):
                    self._async_done(item)
                elif isinstance(item, _Delivered):
                    self._handle(item.event)
                self._fire_due_timers()
            except BaseException as exc:  # the enumerator failed: the whole source fails
                log.debug("coordinator failure", exc_info=True)
                self.failure = exc
                self._running = False
                self._on_failure(exc)

    def _run_call(self, call: _Call) -> None:
        try:
            result = call.fn()
        except BaseException as exc:
            call.future.set_exception(exc)
            return
        call.future.set_result(result)

    def _fire_due_timers(self) -> None:
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, _, callable_, handler, period_ms = heapq.heappop(self._timers)
            future = self._worker.submit(callable_)
            future.add_done_callback(
                lambda f, h=handler, c=callable_, p=period_ms: self._mailbox.put(
                    _AsyncDone(f, h, c, p)))

    def _async_done(self, done: "_AsyncDone") -> None:
        error = done.future.exception()
        if done.period_ms > 0 and self._running:
            self.call_async(done.callable_, done.handler, done.period_ms, done.period_ms)
        done.handler(None if error else done.future.result(), error)

    def _handle(self, event: Any) -> None:
        enumerator = self.enumerator
        if isinstance(event, ReaderRegistrationEvent):
            self._registered.add(event.reader_id)
            enumerator.add_reader(event.reader_id)
            if self._aligned_to is not None:
                self._transport.send_to_reader(event.reader_id, WatermarkAlignmentEvent(self._aligned_to))
        elif isinstance(event, ReportedWatermarkEvent):
            self._align(event)
        elif isinstance(event, SourceEventWrapper):
            enumerator.handle_source_event(event.reader_id, event.event)
        else:
            raise TypeError(f"unknown event {event!r}")

    def _align(self, event: ReportedWatermarkEvent) -> None:
        """The combined watermark is the minimum over readers with active splits (undefined until
        every registered reader reported, and while one of them has a split without records);
        splits more than the allowed drift above it pause."""
        if event.reader_id not in self._registered:
            return
        self._reported[event.reader_id] = event
        if self._drift is None:
            return
        if any(reader_id not in self._reported for reader_id in self._registered):
            return  # a reader that has not reported may hold splits far behind
        marks = [e.watermark for e in self._reported.values() if e.active]
        if not marks or any(m is None for m in marks):
            return
        lowest = min(marks)
        if self._global_watermark is None or lowest > self._global_watermark:
            self._global_watermark = lowest
        allowed = self._global_watermark + self._drift
        if allowed != self._aligned_to:
            self._aligned_to = allowed
            for reader_id in sorted(self._registered):
                self._transport.send_to_reader(reader_id, WatermarkAlignmentEvent(allowed))


class _AsyncDone:
    """The outcome of `call_async`'s callable, for its handler on the coordinator thread."""

    def __init__(self, future: Future, handler: Callable, callable_: Callable, period_ms: int) -> None:
        self.future, self.handler, self.callable_, self.period_ms = future, handler, callable_, period_ms
