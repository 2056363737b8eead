"""The stream's driver: `SourceStream` polls the readers through their handles on the caller's thread,
hands batches out with their lineage, advances split positions and watermarks, and assembles metrics.
It works on a neutral `SourceSpec` (`fastsource.runtime.spec`), not on a connector; checkpointing and
failover are its parts in `checkpointing.py` and `failover.py`."""
from __future__ import annotations

import os
import threading
import time
from typing import Any, Iterator, Optional

import pyarrow as pa

from fastsource.base.reader.source_reader import InputStatus, ReaderOutput, SplitLineage
from fastsource.base.split import Split, SplitState
from fastsource.base.watermarks import WATERMARK_METADATA_KEY, WatermarkTracker
from fastsource.errors import ConfigError, FastsourceError
from fastsource.runtime.checkpoint import CheckpointStore, DirectoryLock
from fastsource.runtime.checkpointing import Checkpointing, TwoPhaseSink
from fastsource.runtime.coordinator import SourceCoordinator
from fastsource.runtime.failover import Failover
from fastsource.runtime.handles import ReaderHandle, Runtime
from fastsource.runtime.spec import SourceSpec


class SourceStream(Checkpointing, Failover):
    """A running read: the coordinator and the enumerator in this process, `parallelism` readers
    wherever the runtime puts them, driven through handles.

    Iterating yields `pyarrow.RecordBatch`es. Split positions advance here, when a batch is handed
    out (each batch carries its lineage), so `checkpoint()` between batches makes a durable snapshot
    covering exactly the batches already yielded, and a failed reader is replaced with its splits
    resuming right after the last record handed out. `poll`, iteration, `checkpoint`, `take_back`
    and `dead_letters` may be called from several threads: they run one at a time (a lock), so each
    batch goes to exactly one caller and a checkpoint falls between two batches.
    """

    def __init__(self, spec: SourceSpec, parallelism: int, checkpoint_dir: Optional[str | os.PathLike],
                 runtime: Runtime, restore: str = "latest") -> None:
        if not isinstance(parallelism, int) or isinstance(parallelism, bool) or parallelism < 1:
            spec.close()
            raise ConfigError(f"parallelism must be a positive integer, not {parallelism!r}")
        self.spec = spec
        self.parallelism = parallelism
        self._available = threading.Event()
        self._lock = threading.RLock()
        self._failure: Optional[BaseException] = None
        self._closed = False
        self.readers: list[ReaderHandle] = []
        self._sinks: list[TwoPhaseSink] = []
        self._dir_lock: Optional[DirectoryLock] = None
        self._pin = spec.schema_pin()
        self._merge_inferred = False
        self._runtime = runtime
        self._store: Optional[CheckpointStore] = None
        try:
            if checkpoint_dir is not None:
                self._store = CheckpointStore(checkpoint_dir, lock=True)
                self._dir_lock = self._store.directory_lock
            restored = self._store.restore_point(restore) if self._store is not None else None
            self.restored_checkpoint_id = restored["checkpoint_id"] if restored else None
            self._identity = spec.identity() if self._store is not None else None
            if restored is not None:
                self._check_identity(restored)
        except BaseException:
            self.close()
            raise
        self._transport = self._runtime.create_transport()
        self._coordinator = SourceCoordinator(self._transport, parallelism, self._on_failure,
                                              spec.watermark_strategy.alignment_max_drift_ms)
        try:
            bound = spec.bind_readers()
        except BaseException:
            self.close()
            raise
        self._reader_spec = bound.reader
        self._schemas = bound.schemas
        self._peeked: Optional[tuple[pa.RecordBatch, tuple[SplitLineage, ...]]] = None
        self._ended: set[int] = set()
        self._next_reader = 0
        self._positions: dict[str, SplitState] = {}
        self._finished: set[str] = set()
        self._last_lineage: tuple[SplitLineage, ...] = ()
        self._reopened: dict[str, Split] = {}
        self._taken_back = False
        self._replaced_in_a_row: dict[int, int] = {}
        self._dead_letters: list[pa.RecordBatch] = []
        self._committed: dict[tuple[str, int], int] = {}
        self._final_commit_done = False
        self._watermarks = WatermarkTracker(spec.watermark_strategy)
        self._started_at = time.monotonic()
        try:
            enumerator = spec.create_enumerator(self._coordinator, restored)
            self.readers = [self._runtime.create_reader(i, self._reader_spec, self._transport, self._available)
                            for i in range(parallelism)]
            self._coordinator.start(enumerator)
            for reader in self.readers:
                reader.start()
        except BaseException:
            self.close()
            raise

    def _on_failure(self, exc: BaseException) -> None:
        self._failure = exc
        self._available.set()

    def __enter__(self) -> "SourceStream":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    @property
    def schema(self) -> pa.Schema:
        """The batches' schema. Known up front unless a format infers its type from the data (e.g.
        `Json()` without a schema); then the first batch is fetched to learn it."""
        schema = self._schemas.schema
        if schema is not None:
            return schema
        if self._pin.pinned is not None:
            return self._pin.pinned
        with self._lock:
            if self._peeked is None:
                self._peeked = self._poll(None)
        if self._peeked is not None:
            return self._peeked[0].schema
        return self._schemas.raw_schema

    @property
    def ended(self) -> bool:
        """True once a bounded source has handed out every record (or the stream was closed)."""
        return self._closed or (len(self._ended) == self.parallelism and self._peeked is None)

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        return self

    def __next__(self) -> pa.RecordBatch:
        batch = self.poll(None)
        if batch is None:
            raise StopIteration
        return batch

    def poll(self, timeout: Optional[float] = None) -> Optional[pa.RecordBatch]:
        """The next batch, waiting at most `timeout` seconds (None: until one comes or the input
        ends). None when nothing came in time or the input ended (see `ended`)."""
        polled = self._next_polled(timeout)
        return polled[0] if polled is not None else None

    def _batches_with_lineage(self) -> Iterator[tuple[pa.RecordBatch, tuple[SplitLineage, ...]]]:
        """Every batch to the end, with its lineage (for read_all's ordering)."""
        while (polled := self._next_polled(None)) is not None:
            yield polled

    def _next_polled(self, timeout: Optional[float]) -> Optional[tuple[pa.RecordBatch, tuple[SplitLineage, ...]]]:
        with self._lock:
            return self._next_polled_locked(timeout)

    def _next_polled_locked(self, timeout: Optional[float]
                            ) -> Optional[tuple[pa.RecordBatch, tuple[SplitLineage, ...]]]:
        if self._taken_back:
            raise FastsourceError("the stream took records back (take_back): it hands out no more "
                                  "batches; checkpoint() and close() remain")
        if self._peeked is not None:
            polled, self._peeked = self._peeked, None
        else:
            polled = self._poll(timeout)
        if polled is not None:
            self._last_lineage = polled[1]
        return polled

    def take_back(self, tail: pa.RecordBatch) -> None:
        """The caller did not use `tail`, the last rows of the batch handed out last (e.g. a record
        limit cut it): the next checkpoint resumes at the first of them in each partition, so a
        restore reads them. The stream then hands out no more batches (its readers are past them);
        checkpoint() and close() remain."""
        with self._lock:
            self._take_back(tail)

    def _take_back(self, tail: pa.RecordBatch) -> None:
        for split_id, offset in self.spec.first_positions(tail, self._last_lineage).items():
            state = self._positions.get(split_id)
            if state is not None:
                state.current_offset = offset
            else:  # the split finished within that batch: it is unfinished again
                entry = next(e for e in self._last_lineage if e.split_id == split_id)
                self._finished.discard(split_id)
                self._reopened[split_id] = entry.split.with_starting_offset(offset)
        self._taken_back = True

    def _poll(self, timeout: Optional[float]) -> Optional[tuple[pa.RecordBatch, tuple[SplitLineage, ...]]]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._closed and len(self._ended) < self.parallelism:
            if self._failure is not None:
                raise self._failure
            self._available.clear()
            polled = self._poll_readers()
            self._watermarks.update(self._positions.values())
            if polled is not None:
                batch, lineage = polled
                if self._schemas.schema is None and not self._merge_inferred:
                    batch = self._pin(batch)
                if self._watermarks.strategy.emit_in_metadata and self.watermark() is not None:
                    metadata = dict(batch.schema.metadata or {})
                    metadata[WATERMARK_METADATA_KEY] = str(self.watermark()).encode()
                    batch = batch.replace_schema_metadata(metadata)
                return batch, lineage
            if len(self._ended) == self.parallelism:
                break
            wait = 0.1 if deadline is None else min(0.1, deadline - time.monotonic())
            if wait <= 0:
                return None
            self._available.wait(wait)
        return None

    def _poll_readers(self) -> Optional[tuple[pa.RecordBatch, tuple[SplitLineage, ...]]]:
        """One round over the readers, starting after the one that gave the last batch."""
        for _ in range(self.parallelism):
            i = self._next_reader
            self._next_reader = (i + 1) % self.parallelism
            if i in self._ended:
                continue
            try:
                output = self.readers[i].poll()
            except Exception as exc:
                self._replace(i, exc)
                continue
            if output.status is InputStatus.END_OF_INPUT:
                self._ended.add(i)
                if len(self._ended) == self.parallelism:
                    self._watermarks.end_of_input()
                    self._commit_final()
                continue
            batch = self._hand_over(i, output)
            if batch is not None:
                return batch, output.lineage
        return None

    def _hand_over(self, reader_id: int, output: ReaderOutput) -> Optional[pa.RecordBatch]:
        """Advance the positions of the batch's splits (they are now handed out)."""
        for split in output.added:
            if split.split_id not in self._positions:
                self._positions[split.split_id] = self.spec.split_state(split)
        for entry in output.lineage:
            state = self._positions.get(entry.split_id)
            if state is None:
                state = self._positions[entry.split_id] = self.spec.split_state(
                    entry.split.with_starting_offset(entry.first_offset))
            elif state.current_offset != entry.first_offset:
                raise FastsourceError(
                    f"internal error: reader {reader_id} returned {entry.split_id} from offset "
                    f"{entry.first_offset}, but {state.current_offset} is next to hand out")
            state.advance(entry.next_offset, entry.max_timestamp, entry.records, entry.bytes)
        if output.finished:
            self._finished.update(output.finished)
            for split_id in output.finished:
                self._positions.pop(split_id, None)
            self._coordinator.splits_finished(list(output.finished))
        if output.lineage:
            self._replaced_in_a_row.pop(reader_id, None)
        return output.batch

    # ------------------------------------------------------------------ watermarks, dead letters

    def watermark(self) -> Optional[int]:
        """The stream's current watermark in epoch ms, or None before there is one."""
        return self._watermarks.watermark

    def dead_letters(self) -> pa.Table:
        """Records diverted by a format with `errors="dead_letter"` since the last call: raw key and
        value, their coordinates, and the reason in `error`."""
        with self._lock:
            batches, self._dead_letters = self._dead_letters, []
            for reader in self.readers:
                batches.extend(reader.dead_letters())
        return pa.Table.from_batches(batches, schema=self._schemas.dead_letter_schema)

    def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:
        """The Arrow PyCapsule stream protocol: pyarrow, polars, duckdb read the stream directly."""
        reader = pa.RecordBatchReader.from_batches(self.schema, self)
        return reader.__arrow_c_stream__(requested_schema)

    def metrics(self) -> dict[str, Any]:
        """Counters of the whole stream and, per unfinished split, its position and lag.

        `current_offset` is the next offset to hand out; `pending_records` is the partition's high
        watermark, as last seen by the reader's consumer, minus it (None while unknown);
        `committed_offset` is the offset last sent to the consumer group (with `group_id`), whose
        outcome the commit counters give. `broker_outages` counts the times no broker answered any
        of the stream's clients, and `broker_down_s` sums how long (the current outage included).
        """
        readers = [reader.metrics() for reader in self.readers]
        splits: dict[str, dict[str, Any]] = {}
        for info in readers:
            for split_id, split in info["splits"].items():
                state = self._positions.get(split_id)
                tp = (split["topic"], split["partition"])
                current = state.current_offset if state is not None else split["starting_offset"]
                high = split["high_watermark"]
                splits[split_id] = {
                    "reader": info["reader_id"], "current_offset": current,
                    "committed_offset": self._committed.get(tp),
                    "high_watermark": high,
                    "pending_records": max(0, high - current) if high is not None else None,
                    "records": state.records if state else 0, "bytes": state.bytes if state else 0,
                    "max_timestamp": state.max_timestamp if state else None,
                    "paused": split["paused"],
                    "idle": self._watermarks.is_idle(state) if state else False}
        return {"records": sum(r["records"] for r in readers),
                "bytes": sum(r["bytes"] for r in readers),
                "elapsed_s": time.monotonic() - self._started_at,
                "fetch_time_s": sum(r["fetch_time_s"] for r in readers),
                "emit_time_s": sum(r["emit_time_s"] for r in readers),
                "commits_succeeded": sum(r["commits_succeeded"] for r in readers),
                "commits_failed": sum(r["commits_failed"] for r in readers),
                "watermark": self.watermark(),
                "broker_outages": self.spec.health.outages,
                "broker_down_s": self.spec.health.down_s(),
                "pending_records": sum(v["pending_records"] or 0 for v in splits.values()),
                "splits": splits}

    def close(self) -> None:
        """Stop every reader and the coordinator; leaves no thread behind. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for sink in self._sinks:
            sink.close()
        for reader in self.readers:
            reader.close()
        self.spec.close()
        if hasattr(self, "_coordinator"):
            self._coordinator.close()
        self._runtime.close()
        if self._dir_lock is not None:
            self._dir_lock.release()
