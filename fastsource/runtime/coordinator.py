"""The source coordinator: runs the enumerator on one thread and routes events through a transport."""
from __future__ import annotations

import heapq
import itertools
import logging
import queue
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Optional, Protocol

from fastsource.runtime.events import (AddSplitEvent, CheckpointBarrier, NoMoreSplitsEvent, ReaderFailedEvent,
                               ReaderRegistrationEvent, RequestSplitEvent, SourceEventWrapper)
from fastsource.split import KafkaPartitionSplit

log = logging.getLogger(__name__)


class Transport(Protocol):
    """Carries events between the coordinator and the readers. The in-process one below is the
    first implementation; a cross-process one only has to provide these calls."""

    def send_to_coordinator(self, event: Any) -> None: ...

    def send_to_reader(self, reader_id: int, event: Any) -> None: ...


class InProcessTransport:
    """Queues in one process: one inbox for the coordinator, one per reader, and a shared wake-up
    callback so that the thread consuming readers' output learns of new events at once."""

    def __init__(self, notify: Callable[[], None] = lambda: None) -> None:
        self.coordinator_inbox: "queue.Queue[Any]" = queue.Queue()
        self._reader_inboxes: dict[int, "queue.Queue[Any]"] = {}
        self._notify = notify

    def reader_inbox(self, reader_id: int) -> "queue.Queue[Any]":
        return self._reader_inboxes.setdefault(reader_id, queue.Queue())

    def send_to_coordinator(self, event: Any) -> None:
        self.coordinator_inbox.put(event)

    def send_to_reader(self, reader_id: int, event: Any) -> None:
        self.reader_inbox(reader_id).put(event)
        self._notify()


class _Call:
    """A callable the coordinator thread runs (snapshot requests, async results, stop)."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn = fn
        self.future: Future = Future()


class SourceCoordinator:
    """Owns the enumerator. Every enumerator method runs on the coordinator's single thread, so the
    enumerator needs no locks; async work runs on a worker and its result comes back as an event.
    It also serves as the enumerator's context (`SplitEnumeratorContext`)."""

    def __init__(self, transport: InProcessTransport, parallelism: int,
                 on_failure: Callable[[BaseException], None]) -> None:
        self._transport = transport
        self._parallelism = parallelism
        self._on_failure = on_failure
        self._registered: set[int] = set()
        self._timers: list[tuple[float, int, Callable[[], Any], Callable, int]] = []
        self._seq = itertools.count()
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fastsource-discovery")
        self._thread = threading.Thread(target=self._run, name="fastsource-coordinator", daemon=True)
        self._running = False
        self.enumerator: Any = None
        self.failure: Optional[BaseException] = None

    # ------------------------------------------------------------------ context for the enumerator

    def current_parallelism(self) -> int:
        return self._parallelism

    def registered_readers(self) -> set[int]:
        return set(self._registered)

    def assign_splits(self, assignment: dict[int, list[KafkaPartitionSplit]]) -> None:
        for reader_id, splits in assignment.items():
            if reader_id not in self._registered:
                raise ValueError(f"cannot assign splits to unregistered reader {reader_id}")
            self._transport.send_to_reader(reader_id, AddSplitEvent(tuple(splits)))

    def signal_no_more_splits(self, reader_id: int) -> None:
        self._transport.send_to_reader(reader_id, NoMoreSplitsEvent())

    def send_event_to_reader(self, reader_id: int, event: Any) -> None:
        self._transport.send_to_reader(reader_id, SourceEventWrapper(event, reader_id))

    def call_async(self, callable_: Callable[[], Any], handler: Callable, initial_delay_ms: int = 0,
                   period_ms: int = 0) -> None:
        due = time.monotonic() + initial_delay_ms / 1000.0
        heapq.heappush(self._timers, (due, next(self._seq), callable_, handler, period_ms))

    # ------------------------------------------------------------------ lifecycle

    def start(self, enumerator: Any) -> None:
        self.enumerator = enumerator
        self._running = True
        self._thread.start()
        self.run_in_coordinator(enumerator.start)

    def run_in_coordinator(self, fn: Callable[[], Any]) -> Future:
        """Run `fn` on the coordinator thread; the future holds its result."""
        call = _Call(fn)
        self._transport.send_to_coordinator(call)
        return call.future

    def snapshot_enumerator(self, checkpoint_id: int) -> Future:
        """The enumerator's state, taken on the coordinator thread and followed at once by a barrier
        to every reader, so no assignment falls between the enumerator's and the readers' snapshots."""
        def snapshot() -> Any:
            state = self.enumerator.snapshot_state(checkpoint_id)
            for reader_id in range(self._parallelism):
                self._transport.send_to_reader(reader_id, CheckpointBarrier(checkpoint_id))
            return state
        return self.run_in_coordinator(snapshot)

    def close(self) -> None:
        if self._running:
            self._running = False
            self._transport.send_to_coordinator(_Call(lambda: None))
            self._thread.join(timeout=30)
        self._worker.shutdown(wait=True, cancel_futures=True)
        if self.enumerator is not None:
            self.enumerator.close()

    def _run(self) -> None:
        inbox = self._transport.coordinator_inbox
        while self._running:
            timeout = None
            if self._timers:
                timeout = max(0.0, self._timers[0][0] - time.monotonic())
            try:
                event = inbox.get(timeout=timeout)
            except queue.Empty:
                event = None
            try:
                if event is not None:
                    self._handle(event)
                self._fire_due_timers()
            except BaseException as exc:  # the enumerator failed: the whole source fails
                log.debug("coordinator failure", exc_info=True)
                self.failure = exc
                self._running = False
                self._on_failure(exc)

    def _fire_due_timers(self) -> None:
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, _, callable_, handler, period_ms = heapq.heappop(self._timers)
            future = self._worker.submit(callable_)
            future.add_done_callback(
                lambda f, h=handler, c=callable_, p=period_ms: self._transport.send_to_coordinator(
                    _Call(lambda: self._async_done(f, h, c, p))))

    def _async_done(self, future: Future, handler: Callable, callable_: Callable, period_ms: int) -> None:
        error = future.exception()
        if period_ms > 0 and self._running:
            self.call_async(callable_, handler, period_ms, period_ms)
        handler(None if error else future.result(), error)

    def _handle(self, event: Any) -> None:
        enumerator = self.enumerator
        if isinstance(event, _Call):
            try:
                event.future.set_result(event.fn())
            except BaseException as exc:
                event.future.set_exception(exc)
                raise
        elif isinstance(event, ReaderRegistrationEvent):
            self._registered.add(event.reader_id)
            enumerator.add_reader(event.reader_id)
        elif isinstance(event, RequestSplitEvent):
            enumerator.handle_split_request(event.reader_id, event.hostname)
        elif isinstance(event, ReaderFailedEvent):
            self._registered.discard(event.reader_id)
            enumerator.add_splits_back(list(event.splits), event.reader_id)
        elif isinstance(event, SourceEventWrapper):
            enumerator.handle_source_event(event.reader_id, event.event)
        else:
            raise TypeError(f"unknown event {event!r}")
