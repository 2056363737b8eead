"""Source readers: the reader base (splits, elements queue, fetchers, events) and the Kafka reader."""
from __future__ import annotations

import enum
import logging
import queue
import time
from typing import Any, Callable, Iterable, Optional

import pyarrow as pa

from fastsource.runtime.coordinator import InProcessTransport
from fastsource.reader.elements_queue import FutureCompletingBlockingQueue
from fastsource.reader.emitter import KafkaRecordEmitter
from fastsource.runtime.events import (AddSplitEvent, CheckpointBarrier, NoMoreSplitsEvent,
                               ReaderRegistrationEvent, SourceEventWrapper, SplitsRemovedEvent)
from fastsource.reader.fetcher import SingleThreadFetcherManager
from fastsource.split import KafkaPartitionSplit, KafkaPartitionSplitState

log = logging.getLogger(__name__)


class InputStatus(enum.Enum):
    MORE_AVAILABLE = "more_available"
    NOTHING_AVAILABLE = "nothing_available"
    END_OF_INPUT = "end_of_input"


class SourceReaderBase:
    """Reads the splits it is given through its fetcher manager and hands batches out one by one.

    `poll_next()` never blocks: it returns a batch, NOTHING_AVAILABLE (wait on `available`), or
    END_OF_INPUT once the enumerator has said no more splits will come and every split finished.
    All methods run on the one thread that consumes the reader's output.
    """

    def __init__(self, reader_id: int, transport: InProcessTransport,
                 fetcher_manager: SingleThreadFetcherManager, emitter: KafkaRecordEmitter) -> None:
        self.reader_id = reader_id
        self._transport = transport
        self._inbox: "queue.Queue[Any]" = transport.reader_inbox(reader_id)
        self._fetcher_manager = fetcher_manager
        self._queue: FutureCompletingBlockingQueue = fetcher_manager.elements_queue
        self.emitter = emitter
        self.states: dict[str, KafkaPartitionSplitState] = {}
        self._no_more_splits = False
        self.finished_split_ids: list[str] = []
        self.records_emitted = 0
        self.bytes_emitted = 0
        self.emit_time_s = 0.0

    @property
    def available(self):
        """An event set whenever this reader may have something to return."""
        return self._queue.available

    def start(self) -> None:
        """Register with the coordinator. The fetcher (and its consumer) starts with the first splits:
        a consumer created earlier can wait up to a second for the assigned topics' metadata."""
        self._transport.send_to_coordinator(ReaderRegistrationEvent(self.reader_id))

    def poll_next(self) -> tuple[InputStatus, Optional[pa.RecordBatch]]:
        """The next batch. A fetcher's error is raised only once the batches it fetched before
        failing have been returned, so nothing read before an error is lost."""
        self._drain_inbox()
        while True:
            records = self._queue.poll()
            if records is None:
                break
            started = time.perf_counter()
            batch = self.emitter.emit(records, self.states)
            self.emit_time_s += time.perf_counter() - started
            for _, _, _, count, nbytes in records.progress:
                self.records_emitted += count
                self.bytes_emitted += nbytes
            for split_id in records.finished_splits:
                self._on_split_finished(split_id)
            if batch is not None and batch.num_rows:
                return InputStatus.MORE_AVAILABLE, batch
        self._fetcher_manager.check_errors()
        if self._no_more_splits and not self.states and self._inbox.empty():
            return InputStatus.END_OF_INPUT, None
        return InputStatus.NOTHING_AVAILABLE, None

    def is_available(self) -> bool:
        return not self._queue.is_empty() or not self._inbox.empty()

    def _drain_inbox(self, barrier: Optional[int] = None, timeout: float = 60.0) -> None:
        """Handle the coordinator's events; with `barrier`, exactly those before that checkpoint's
        barrier (waiting for it), leaving later ones queued."""
        while True:
            try:
                event = self._inbox.get(timeout=timeout) if barrier is not None else self._inbox.get_nowait()
            except queue.Empty:
                if barrier is not None:
                    raise TimeoutError(f"reader {self.reader_id} got no barrier for checkpoint {barrier}")
                return
            if isinstance(event, CheckpointBarrier):
                if event.checkpoint_id == barrier:
                    return
            elif isinstance(event, AddSplitEvent):
                self.add_splits(list(event.splits))
            elif isinstance(event, NoMoreSplitsEvent):
                self.notify_no_more_splits()
            elif isinstance(event, SourceEventWrapper):
                self.handle_source_events(event.event)
            else:
                raise TypeError(f"reader {self.reader_id} got an unknown event {event!r}")

    def add_splits(self, splits: list[KafkaPartitionSplit]) -> None:
        for split in splits:
            self.states[split.split_id] = KafkaPartitionSplitState(split)
        self._fetcher_manager.add_splits(splits)

    def notify_no_more_splits(self) -> None:
        self._no_more_splits = True

    def handle_source_events(self, event: Any) -> None:
        log.debug("reader %d ignores source event %r", self.reader_id, event)

    def send_source_event_to_coordinator(self, event: Any) -> None:
        self._transport.send_to_coordinator(SourceEventWrapper(event, self.reader_id))

    def pause_or_resume_splits(self, pause: Iterable[str], resume: Iterable[str]) -> None:
        self._fetcher_manager.pause_or_resume_splits(pause, resume)

    @property
    def fetch_time_s(self) -> float:
        """Seconds the fetcher spent in fetch calls (GIL released for most of it)."""
        return self._fetcher_manager.fetch_time_s

    def high_watermarks(self, partitions: list[tuple[str, int]]) -> list[int]:
        """High watermarks last seen by this reader's consumer (-1: not seen)."""
        split_reader = self._fetcher_manager.split_reader()
        if split_reader is None:
            return [-1] * len(partitions)
        return split_reader.high_watermarks(partitions)

    def client_stats(self) -> dict:
        split_reader = self._fetcher_manager.split_reader()
        return split_reader.stats() if split_reader is not None else {}

    def _on_split_finished(self, split_id: str) -> None:
        self.states.pop(split_id, None)
        self.finished_split_ids.append(split_id)

    def snapshot_state(self, checkpoint_id: int) -> list[KafkaPartitionSplit]:
        """The unfinished splits, each resuming right after the last record handed out. Needs the
        checkpoint's barrier in the inbox (the coordinator sends it with the enumerator snapshot)."""
        self._drain_inbox(barrier=checkpoint_id)
        return [state.to_split() for state in self.states.values()]

    def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        """Called once the checkpoint is durable."""

    def close(self) -> None:
        self._fetcher_manager.close()


class KafkaSourceReader(SourceReaderBase):
    """The Kafka reader: ends splits of deleted partitions, and commits each completed checkpoint's
    offsets to the consumer group (asynchronously; failures are counted, never fatal, never used for
    recovery)."""

    def __init__(self, reader_id: int, transport: InProcessTransport,
                 fetcher_manager: SingleThreadFetcherManager, emitter: KafkaRecordEmitter,
                 commit_offsets: bool) -> None:
        super().__init__(reader_id, transport, fetcher_manager, emitter)
        self._commit_offsets = commit_offsets
        self._offsets_to_commit: dict[int, list[tuple[str, int, int]]] = {}
        self.committed_offsets: dict[str, int] = {}
        self.commits_failed_to_send = 0

    def handle_source_events(self, event: Any) -> None:
        if isinstance(event, SplitsRemovedEvent):
            gone = [s for s in event.split_ids if s in self.states]
            if gone:
                log.warning("reader %d ends split(s) of deleted partitions: %s", self.reader_id,
                            ", ".join(gone))
                self._fetcher_manager.remove_splits(gone)
                for split_id in gone:
                    self._on_split_finished(split_id)
        else:
            super().handle_source_events(event)

    def snapshot_state(self, checkpoint_id: int) -> list[KafkaPartitionSplit]:
        splits = super().snapshot_state(checkpoint_id)
        if self._commit_offsets:
            self._offsets_to_commit[checkpoint_id] = [(s.topic, s.partition, s.starting_offset)
                                                      for s in splits]
        return splits

    def notify_checkpoint_complete(self, checkpoint_id: int) -> None:
        offsets = self._offsets_to_commit.pop(checkpoint_id, None)
        for older in [c for c in self._offsets_to_commit if c < checkpoint_id]:
            del self._offsets_to_commit[older]
        split_reader = self._fetcher_manager.split_reader()
        if not offsets or split_reader is None:
            return
        try:
            split_reader.commit(offsets)
            self.committed_offsets.update({f"{t}-{p}": o for t, p, o in offsets})
        except Exception as exc:
            self.commits_failed_to_send += 1
            log.warning("reader %d could not commit offsets of checkpoint %d: %s", self.reader_id,
                        checkpoint_id, exc)
