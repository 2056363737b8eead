"""The source reader base: splits, elements queue, fetchers, events to and from the coordinator."""
from __future__ import annotations

import enum
import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterable, Optional

import pyarrow as pa

from fastsource.base.events import (AddSplitEvent, NoMoreSplitsEvent, ReaderRegistrationEvent,
                                    ReportedWatermarkEvent, SourceEventWrapper, WatermarkAlignmentEvent)
from fastsource.base.reader.elements_queue import FutureCompletingBlockingQueue
from fastsource.base.reader.emitter import RecordEmitter
from fastsource.base.reader.fetcher import SingleThreadFetcherManager
from fastsource.base.split import Split, SplitState
from fastsource.base.transport import Transport
from fastsource.base.watermarks import WatermarkStrategy, WatermarkTracker

log = logging.getLogger(__name__)


class InputStatus(enum.Enum):
    MORE_AVAILABLE = "more_available"
    NOTHING_AVAILABLE = "nothing_available"
    END_OF_INPUT = "end_of_input"


@dataclass(frozen=True)
class SplitLineage:
    """Where a batch's records of one split come from: the split's position before the batch
    (`first_offset`) and after it (`next_offset`), its largest timestamp (-1: none), records, bytes."""
    split: Split
    first_offset: int
    next_offset: int
    max_timestamp: int
    records: int
    bytes: int

    @property
    def split_id(self) -> str:
        return self.split.split_id


@dataclass(frozen=True)
class ReaderOutput:
    """One answer of a reader's poll: a batch (None when every record went to dead letters or only
    splits changed), its lineage, the splits whose last record is in it or before it, and the splits
    the reader took on since its last answer (as assigned)."""
    status: InputStatus
    batch: Optional[pa.RecordBatch] = None
    lineage: tuple[SplitLineage, ...] = ()
    finished: tuple[str, ...] = ()
    added: tuple[Split, ...] = ()


NOTHING = ReaderOutput(InputStatus.NOTHING_AVAILABLE)
END = ReaderOutput(InputStatus.END_OF_INPUT)


class SourceReaderBase:
    """Reads the splits it is given through its fetcher manager and hands batches out one by one.

    `poll_next()` never blocks: it returns a batch with its lineage, NOTHING_AVAILABLE (wait on
    `available`), or END_OF_INPUT once the enumerator has said no more splits will come and every
    split finished. It talks to the coordinator only through the transport, whose messages for it
    wait in its own inbox. All methods run on the one thread that consumes the reader's output.
    """

    def __init__(self, reader_id: int, transport: Transport,
                 fetcher_manager: SingleThreadFetcherManager, emitter: RecordEmitter,
                 watermark_strategy: WatermarkStrategy = WatermarkStrategy()) -> None:
        self.reader_id = reader_id
        self._transport = transport
        self._inbox: "queue.Queue[Any]" = queue.Queue()
        self._fetcher_manager = fetcher_manager
        self._queue: FutureCompletingBlockingQueue = fetcher_manager.elements_queue
        self.emitter = emitter
        self.states: dict[str, SplitState] = {}
        self._no_more_splits = False
        self._ended_splits: list[str] = []
        self._added: list[Split] = []
        self.finished_split_ids: list[str] = []
        self.records_emitted = 0
        self.bytes_emitted = 0
        self.emit_time_s = 0.0
        self._watermarks = WatermarkTracker(watermark_strategy)
        self._report_watermarks = watermark_strategy.alignment_max_drift_ms is not None
        self._reported: Optional[tuple[Optional[int], bool]] = None
        self._max_watermark: Optional[int] = None
        transport.bind_reader(reader_id, self._deliver)

    def _deliver(self, event: Any) -> None:
        """The transport's delivery into this reader's inbox (any thread)."""
        self._inbox.put(event)
        self._queue.wake_up_puller()

    @property
    def available(self) -> threading.Event:
        """An event set whenever this reader may have something to return."""
        return self._queue.available

    def start(self) -> None:
        """Register with the coordinator. The fetcher (and its consumer) starts with the first splits:
        a consumer created earlier can wait up to a second for the assigned topics' metadata."""
        self._transport.send_to_coordinator(ReaderRegistrationEvent(self.reader_id))

    def poll_next(self) -> ReaderOutput:
        """The next batch. A fetcher's error is raised only once the batches it fetched before
        failing have been returned, so nothing read before an error is lost."""
        self._drain_inbox()
        added, self._added = tuple(self._added), []
        while True:
            records = self._queue.poll()
            if records is None:
                break
            lineage = tuple(SplitLineage(self.states[split_id].split, self.states[split_id].current_offset,
                                         next_offset, max_ts, count, nbytes)
                            for split_id, next_offset, max_ts, count, nbytes in records.progress
                            if split_id in self.states)
            started = time.perf_counter()
            batch = self.emitter.emit(records, self.states)
            self.emit_time_s += time.perf_counter() - started
            for _, _, _, count, nbytes in records.progress:
                self.records_emitted += count
                self.bytes_emitted += nbytes
            for split_id in records.finished_splits:
                self._on_split_finished(split_id)
            finished, self._ended_splits = tuple(self._ended_splits), []
            self._after_progress()
            if lineage or finished or added or (batch is not None and batch.num_rows):
                return ReaderOutput(InputStatus.MORE_AVAILABLE,
                                    batch if batch is not None and batch.num_rows else None,
                                    lineage, finished, added)
        self._fetcher_manager.check_errors()
        if self._ended_splits or added:
            finished, self._ended_splits = tuple(self._ended_splits), []
            self._after_progress()
            return ReaderOutput(InputStatus.MORE_AVAILABLE, finished=finished, added=added)
        self._after_progress()
        if self._no_more_splits and not self.states and self._inbox.empty():
            return END
        return NOTHING

    def _drain_inbox(self) -> None:
        """Handle the coordinator's messages that arrived so far."""
        while True:
            try:
                event = self._inbox.get_nowait()
            except queue.Empty:
                return
            if isinstance(event, AddSplitEvent):
                self.add_splits(list(event.splits))
            elif isinstance(event, NoMoreSplitsEvent):
                self.notify_no_more_splits()
            elif isinstance(event, WatermarkAlignmentEvent):
                self._max_watermark = event.max_watermark
                self._align()
            elif isinstance(event, SourceEventWrapper):
                self.handle_source_events(event.event)
            else:
                raise TypeError(f"reader {self.reader_id} got an unknown event {event!r}")

    def add_splits(self, splits: list[Split]) -> None:
        for split in splits:
            self.states[split.split_id] = self._initial_state(split)
        self._added.extend(splits)
        self._fetcher_manager.add_splits(splits)

    def _initial_state(self, split: Split) -> SplitState:
        """A new split's state (Flink's initializedState): the implementation's own state class."""
        raise NotImplementedError

    def notify_no_more_splits(self) -> None:
        self._no_more_splits = True

    def handle_source_events(self, event: Any) -> None:
        log.debug("reader %d ignores source event %r", self.reader_id, event)

    def pause_or_resume_splits(self, pause: Iterable[str], resume: Iterable[str]) -> None:
        self._fetcher_manager.pause_or_resume_splits(pause, resume)

    # ------------------------------------------------------------------ watermarks and alignment

    def _after_progress(self) -> None:
        """Report this reader's watermark when it changed, and apply the last alignment decision."""
        if not self._report_watermarks:
            return
        active = [s for s in self.states.values()]
        mark = self._watermarks.update(active) if active else self._watermarks.watermark
        report = (mark, bool(active))
        if report != self._reported:
            self._reported = report
            self._transport.send_to_coordinator(ReportedWatermarkEvent(self.reader_id, mark, bool(active)))
        self._align()

    def _align(self) -> None:
        """Pause the splits whose watermark is above the coordinator's allowed maximum, resume the
        others (Flink's per-split alignment)."""
        pause, resume = [], []
        for state in self.states.values():
            mark = self._watermarks.split_watermark(state)
            ahead = (self._max_watermark is not None and mark is not None
                     and mark > self._max_watermark)
            if ahead and not state.paused:
                pause.append(state.split_id)
            elif state.paused and not ahead:
                resume.append(state.split_id)
        for split_id in pause:
            self.states[split_id].paused = True
        for split_id in resume:
            self.states[split_id].paused = False
        if pause or resume:
            self.pause_or_resume_splits(pause, resume)

    # ------------------------------------------------------------------ fetcher-thread queries

    @property
    def fetch_time_s(self) -> float:
        """Seconds the fetcher spent in fetch calls (GIL released for most of it)."""
        return self._fetcher_manager.fetch_time_s

    def _on_split_finished(self, split_id: str) -> None:
        if self.states.pop(split_id, None) is not None:
            self.finished_split_ids.append(split_id)
            self._ended_splits.append(split_id)

    def metrics(self) -> dict[str, Any]:
        """The reader's counters and, per split it holds, where it started and whether it is paused
        (the keys of `ReaderHandle.metrics`); an implementation adds what its client observed."""
        return {"reader_id": self.reader_id,
                "records": self.records_emitted, "bytes": self.bytes_emitted,
                "fetch_time_s": self.fetch_time_s, "emit_time_s": self.emit_time_s,
                "commits_succeeded": 0, "commits_failed": 0, "committed_offsets": {},
                "finished_splits": list(self.finished_split_ids),
                "splits": {s.split_id: {"starting_offset": s.split.starting_offset, "paused": s.paused,
                                        "high_watermark": None} for s in self.states.values()}}

    def take_dead_letters(self) -> list[pa.RecordBatch]:
        """The emitter's dead-letter batches since the last call."""
        batches = list(self.emitter.dead_letters)
        self.emitter.dead_letters.clear()
        return batches

    def snapshot_state(self, checkpoint_id: int) -> dict[str, Any]:
        """The reader's own view of its splits (its positions may run ahead of the stream's hand-over
        positions, which are what a checkpoint stores)."""
        return {"reader_id": self.reader_id,
                "splits": {split_id: state.current_offset for split_id, state in self.states.items()}}

    def notify_checkpoint_complete(self, checkpoint_id: int,
                                   offsets: Optional[list[tuple[str, int, int]]] = None) -> bool:
        """Called once the checkpoint is durable; False when there was nothing to do it with."""
        return False

    def close(self) -> None:
        self._transport.unbind_reader(self.reader_id)
        self._fetcher_manager.close()
