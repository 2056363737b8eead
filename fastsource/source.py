"""The user-facing source: `KafkaSource` (configuration) and `SourceStream` (one running read)."""
from __future__ import annotations

import os
import threading
import time
from typing import Any, Iterable, Iterator, Mapping, Optional, Sequence

import pyarrow as pa

from fastsource.io.admin import BrokerHealth, KafkaAdmin
from fastsource.runtime.checkpoint import CheckpointStore
from fastsource.runtime.coordinator import InProcessTransport, SourceCoordinator
from fastsource.reader.elements_queue import FutureCompletingBlockingQueue
from fastsource.reader.emitter import KafkaRecordEmitter
from fastsource.enumerator.kafka_enumerator import KafkaSourceEnumerator, split_owner
from fastsource.errors import ConfigError
from fastsource.reader.fetcher import SingleThreadFetcherManager
from fastsource.formats import Binary, FormatLike, as_format
from fastsource.enumerator.offsets import OffsetsInitializer
from fastsource.reader.source_reader import InputStatus, KafkaSourceReader
from fastsource.split import deserialize_split, serialize_split
from fastsource.io.sink import ParquetDatasetSink
from fastsource.reader.split_reader import BatchLimits, KafkaPartitionSplitReader, consumer_config
from fastsource.runtime.watermarks import WATERMARK_METADATA_KEY, WatermarkStrategy, WatermarkTracker
from fastsource.enumerator.subscriber import (KafkaSubscriber, PartitionSetSubscriber, TopicListSubscriber,
                                   TopicPatternSubscriber)

_UNSET: Any = object()


def default_parallelism() -> int:
    """Readers used by `read_all()` and the command line when none is given: two per CPU core this
    process may run on, at most 8. Each reader owns one librdkafka consumer, whose broker thread
    parses fetch responses while the reader's fetch thread copies records into Arrow, so two readers
    per core keep every core busy (bench/RESULTS.md: 4 readers on 2 cores read 100-byte records
    about 1.5x as fast as one). Readers left without a split cost no consumer."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(8, 2 * cores))


class KafkaSource:
    """What to read and how: bootstrap servers, a subscription, starting and stopping offsets, formats.

    Exactly one of `topics`, `topic_pattern` and `partitions` selects the subscription.
    `stopping_offsets=None` makes the source unbounded. `properties` are librdkafka client properties
    passed through to every consumer. `batch_limits` shapes fetched batches; `request_timeout_s` bounds
    metadata and offset look-ups (and how long a broker never reached is waited for at start);
    `broker_timeout_ms` is how long every part of a running read waits out a lost cluster before
    failing; `watermark_strategy` sets watermarks, idleness and alignment.
    """

    def __init__(self, bootstrap_servers: str, topics: Optional[Sequence[str]] = None,
                 topic_pattern: Optional[str] = None,
                 partitions: Optional[Iterable[tuple[str, int]]] = None,
                 group_id: Optional[str] = None,
                 starting_offsets: OffsetsInitializer = OffsetsInitializer.earliest(),
                 stopping_offsets: Optional[OffsetsInitializer] = _UNSET,
                 value_format: FormatLike = Binary(), key_format: FormatLike = Binary(),
                 include_headers: bool = False,
                 partition_discovery_interval_ms: Optional[int] = None,
                 properties: Optional[Mapping[str, Any]] = None,
                 batch_limits: BatchLimits = BatchLimits(),
                 request_timeout_s: float = 15.0,
                 broker_timeout_ms: int = 60000,
                 watermark_strategy: WatermarkStrategy = WatermarkStrategy()) -> None:
        if not isinstance(bootstrap_servers, str) or not bootstrap_servers.strip():
            raise ConfigError(f"bootstrap_servers must be a non-empty 'host:port[,...]' string, got "
                              f"{bootstrap_servers!r}")
        chosen = [n for n, v in (("topics", topics), ("topic_pattern", topic_pattern),
                                 ("partitions", partitions)) if v is not None]
        if len(chosen) != 1:
            raise ConfigError("give exactly one of topics, topic_pattern, partitions "
                              f"(got {', '.join(chosen) or 'none'})")
        if isinstance(topics, str):
            topics = [topics]
        if not isinstance(starting_offsets, OffsetsInitializer):
            raise ConfigError(f"starting_offsets must be an OffsetsInitializer, not {starting_offsets!r}")
        if stopping_offsets is _UNSET:
            stopping_offsets = OffsetsInitializer.latest()
        if stopping_offsets is not None and not isinstance(stopping_offsets, OffsetsInitializer):
            raise ConfigError(f"stopping_offsets must be an OffsetsInitializer or None, not "
                              f"{stopping_offsets!r}")
        if stopping_offsets is not None and stopping_offsets.kind == "committed" and not group_id:
            raise ConfigError("stopping_offsets=committed() needs a group_id")
        self.bootstrap_servers = bootstrap_servers
        self.topics = list(topics) if topics is not None else None
        self.topic_pattern = topic_pattern
        self.partitions = list(partitions) if partitions is not None else None
        self.group_id = group_id
        self.starting_offsets = starting_offsets
        self.stopping_offsets = stopping_offsets
        self.value_format = as_format(value_format)
        self.key_format = as_format(key_format)
        self.include_headers = include_headers
        self.partition_discovery_interval_ms = partition_discovery_interval_ms
        self.properties = {str(k): str(v) for k, v in (properties or {}).items()}
        self.batch_limits = batch_limits
        self.request_timeout_s = request_timeout_s
        self.broker_timeout_ms = broker_timeout_ms
        self.watermark_strategy = watermark_strategy
        self._subscriber()  # validates the subscription arguments now

    @property
    def bounded(self) -> bool:
        """Whether the source has stopping offsets (and so an end)."""
        return self.stopping_offsets is not None

    def _subscriber(self) -> KafkaSubscriber:
        if self.topics is not None:
            return TopicListSubscriber(self.topics)
        if self.topic_pattern is not None:
            return TopicPatternSubscriber(self.topic_pattern)
        return PartitionSetSubscriber(self.partitions or [])

    def admin(self) -> KafkaAdmin:
        """A metadata/offsets client with this source's properties and isolation level."""
        read_committed = self.properties.get("isolation.level", "read_committed") == "read_committed"
        return KafkaAdmin(self.bootstrap_servers, self.properties, self.request_timeout_s,
                          read_committed, BrokerHealth(self.bootstrap_servers, self.broker_timeout_ms))

    def consumer_config(self) -> dict[str, str]:
        """The librdkafka properties each reader's consumer is created with."""
        return consumer_config(self.bootstrap_servers, self.group_id, self.properties)

    def open(self, parallelism: int = 1,
             checkpoint_dir: Optional[str | os.PathLike] = None) -> "SourceStream":
        """Start reading with `parallelism` readers; restores from `checkpoint_dir` if it holds a
        checkpoint. Use as a context manager so that every thread and consumer is released."""
        return SourceStream(self, parallelism, checkpoint_dir)

    def read_all(self, parallelism: Optional[int] = None) -> pa.Table:
        """Read a bounded source to its stopping offsets into one table, with `parallelism` readers
        (default: `default_parallelism()`). Rows of one partition keep their order."""
        if not self.bounded:
            raise ConfigError("read_all() needs a bounded source: set stopping_offsets")
        if parallelism is None:
            parallelism = default_parallelism()
        with self.open(parallelism=parallelism) as stream:
            return pa.Table.from_batches(list(stream), schema=stream.schema)


class SourceStream:
    """A running read: the coordinator, the enumerator and `parallelism` readers in this process.

    Iterating yields `pyarrow.RecordBatch`es; `checkpoint()` between batches makes a durable snapshot
    covering exactly the batches already yielded.
    """

    def __init__(self, source: KafkaSource, parallelism: int,
                 checkpoint_dir: Optional[str | os.PathLike]) -> None:
        if not isinstance(parallelism, int) or parallelism < 1:
            raise ConfigError(f"parallelism must be a positive integer, not {parallelism!r}")
        self.source = source
        self.parallelism = parallelism
        self._available = threading.Event()
        self._failure: Optional[BaseException] = None
        self._closed = False
        self._store = CheckpointStore(checkpoint_dir) if checkpoint_dir is not None else None
        restored = self._store.latest() if self._store is not None else None
        self.restored_checkpoint_id = restored["checkpoint_id"] if restored else None
        self._transport = InProcessTransport(notify=self._available.set)
        self._admin = source.admin()
        self._coordinator = SourceCoordinator(self._transport, parallelism, self._on_failure)
        self.readers = [self._make_reader(i) for i in range(parallelism)]
        self._peeked: Optional[pa.RecordBatch] = None
        self._sinks: list[ParquetDatasetSink] = []
        self._ended: set[int] = set()
        self._next_reader = 0
        self._watermarks = WatermarkTracker(source.watermark_strategy)
        self._started_at = time.monotonic()
        try:
            enumerator = KafkaSourceEnumerator(
                source._subscriber(), self._admin, self._coordinator, source.starting_offsets,
                source.stopping_offsets, source.group_id, source.partition_discovery_interval_ms,
                state=restored["enumerator"] if restored else None)
            if restored:
                for data in restored["splits"]:
                    split = deserialize_split(data)
                    self.readers[split_owner(split.topic, split.partition, parallelism)].add_splits([split])
            self._coordinator.start(enumerator)
            for reader in self.readers:
                reader.start()
        except BaseException:
            self.close()
            raise

    def _make_reader(self, reader_id: int) -> KafkaSourceReader:
        source = self.source
        config = source.consumer_config()
        elements = FutureCompletingBlockingQueue(capacity=2, available=self._available)

        def split_reader() -> KafkaPartitionSplitReader:
            return KafkaPartitionSplitReader(config, source.include_headers, source.batch_limits,
                                             source.broker_timeout_ms, self._admin.health)

        raw_schema = KafkaPartitionSplitReader.raw_schema(source.include_headers)
        emitter = KafkaRecordEmitter(raw_schema, source.key_format, source.value_format)
        manager = SingleThreadFetcherManager(elements, split_reader)
        return KafkaSourceReader(reader_id, self._transport, manager, emitter,
                                 commit_offsets=source.group_id is not None)

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
        schema = self.readers[0].emitter.schema
        if schema is not None:
            return schema
        if self._peeked is None:
            self._peeked = self._poll(None)
        if self._peeked is not None:
            return self._peeked.schema
        return self.readers[0].emitter.raw_schema

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
        if self._peeked is not None:
            batch, self._peeked = self._peeked, None
            return batch
        return self._poll(timeout)

    def _poll(self, timeout: Optional[float]) -> Optional[pa.RecordBatch]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._closed and len(self._ended) < self.parallelism:
            if self._failure is not None:
                raise self._failure
            self._available.clear()
            batch = self._poll_readers()
            self._advance_watermark()
            if batch is not None:
                if self._watermarks.strategy.emit_in_metadata and self.watermark() is not None:
                    metadata = dict(batch.schema.metadata or {})
                    metadata[WATERMARK_METADATA_KEY] = str(self.watermark()).encode()
                    batch = batch.replace_schema_metadata(metadata)
                return batch
            wait = 0.1 if deadline is None else min(0.1, deadline - time.monotonic())
            if wait <= 0:
                return None
            self._available.wait(wait)
        return None

    def _poll_readers(self) -> Optional[pa.RecordBatch]:
        """One round over the readers, starting after the one that gave the last batch."""
        for _ in range(self.parallelism):
            i = self._next_reader
            self._next_reader = (i + 1) % self.parallelism
            if i in self._ended:
                continue
            status, batch = self.readers[i].poll_next()
            if status is InputStatus.END_OF_INPUT:
                self._ended.add(i)
            elif batch is not None:
                return batch
        return None

    def _advance_watermark(self) -> None:
        states = [state for reader in self.readers for state in reader.states.values()]
        self._watermarks.update(states)
        pause, resume = self._watermarks.alignment(states)
        if not pause and not resume:
            return
        for reader in self.readers:
            mine_pause = [s for s in pause if s in reader.states]
            mine_resume = [s for s in resume if s in reader.states]
            for split_id in mine_pause:
                reader.states[split_id].paused = True
            for split_id in mine_resume:
                reader.states[split_id].paused = False
            if mine_pause or mine_resume:
                reader.pause_or_resume_splits(mine_pause, mine_resume)

    def watermark(self) -> Optional[int]:
        """The stream's current watermark in epoch ms, or None before there is one."""
        return self._watermarks.watermark

    def dead_letters(self) -> pa.Table:
        """Records diverted by a format with `errors="dead_letter"` since the last call: raw key and
        value, their coordinates, and the reason in `error`."""
        batches = [b for reader in self.readers for b in reader.emitter.dead_letters]
        for reader in self.readers:
            reader.emitter.dead_letters.clear()
        return pa.Table.from_batches(batches, schema=self.readers[0].emitter.dead_letter_schema)

    def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:
        """The Arrow PyCapsule stream protocol: pyarrow, polars, duckdb read the stream directly."""
        reader = pa.RecordBatchReader.from_batches(self.schema, self)
        return reader.__arrow_c_stream__(requested_schema)

    def checkpoint(self) -> int:
        """Snapshot the enumerator and every reader; durable when this returns. Needs checkpoint_dir."""
        if self._store is None:
            raise ConfigError("checkpoint() needs the stream to be opened with a checkpoint_dir")
        checkpoint_id = self._store.next_id()
        enumerator_state = self._coordinator.snapshot_enumerator(checkpoint_id).result(timeout=60)
        splits = [split for reader in self.readers for split in reader.snapshot_state(checkpoint_id)]
        for sink in self._sinks:
            sink.pre_commit(checkpoint_id)
        self._store.write(checkpoint_id, {
            "parallelism": self.parallelism,
            "enumerator": enumerator_state,
            "splits": [serialize_split(s) for s in splits],
        })
        for sink in self._sinks:
            sink.commit(checkpoint_id)
        for reader in self.readers:
            reader.notify_checkpoint_complete(checkpoint_id)
        return checkpoint_id

    def attach(self, sink: ParquetDatasetSink) -> ParquetDatasetSink:
        """Tie a two-phase sink to this stream's checkpoints: it is recovered to the restored
        checkpoint now, pre-committed before each checkpoint is written and committed after."""
        if self._store is None:
            raise ConfigError("a sink needs the stream to be opened with a checkpoint_dir")
        sink.recover(self.restored_checkpoint_id)
        self._sinks.append(sink)
        return sink

    def metrics(self) -> dict[str, Any]:
        """Counters of the whole stream and, per unfinished split, its position and lag.

        `broker_outages` counts the times no broker answered any of the stream's clients, and
        `broker_down_s` sums how long (the current outage included).
        `pending_records` is the partition's high watermark, as last seen by the consumer, minus the
        next offset to emit (None before the consumer has seen one); `committed_offset` is the offset
        last sent to the consumer group (with `group_id`), whose outcome the commit counters give.
        """
        splits: dict[str, dict[str, Any]] = {}
        for reader in self.readers:
            states = list(reader.states.values())
            highs = reader.high_watermarks([s.split.topic_partition for s in states])
            for state, high in zip(states, highs):
                splits[state.split_id] = {
                    "reader": reader.reader_id, "current_offset": state.current_offset,
                    "committed_offset": reader.committed_offsets.get(state.split_id),
                    "high_watermark": high if high >= 0 else None,
                    "pending_records": max(0, high - state.current_offset) if high >= 0 else None,
                    "records": state.records, "bytes": state.bytes,
                    "max_timestamp": state.max_timestamp, "paused": state.paused,
                    "idle": self._watermarks.is_idle(state)}
        stats = [reader.client_stats() for reader in self.readers]
        return {"records": sum(r.records_emitted for r in self.readers),
                "bytes": sum(r.bytes_emitted for r in self.readers),
                "elapsed_s": time.monotonic() - self._started_at,
                "fetch_time_s": sum(r.fetch_time_s for r in self.readers),
                "emit_time_s": sum(r.emit_time_s for r in self.readers),
                "commits_succeeded": sum(s.get("commits_succeeded", 0) for s in stats),
                "commits_failed": sum(s.get("commits_failed", 0) for s in stats)
                + sum(r.commits_failed_to_send for r in self.readers),
                "watermark": self.watermark(),
                "broker_outages": self._admin.health.outages,
                "broker_down_s": self._admin.health.down_s(),
                "pending_records": sum(v["pending_records"] or 0 for v in splits.values()),
                "splits": splits}

    def close(self) -> None:
        """Stop every fetcher and the coordinator; leaves no thread behind. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for sink in getattr(self, "_sinks", []):
            sink.close()
        for reader in getattr(self, "readers", []):
            reader.close()
        self._admin.close()
        self._coordinator.close()
