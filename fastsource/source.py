"""The user-facing source: `KafkaSource` (configuration) and `SourceStream` (one running read)."""
from __future__ import annotations

import concurrent.futures
import copy
import dataclasses
import logging
import os
import threading
import time
import warnings
from typing import Any, Iterable, Iterator, Mapping, Optional, Sequence

import pyarrow as pa

from fastsource.kafka.admin import BrokerHealth, KafkaAdmin
from fastsource.runtime.checkpoint import RESTORE_MODES, CheckpointStore, DirectoryLock
from fastsource.runtime.coordinator import SourceCoordinator
from fastsource.base.events import ReaderFailedEvent
from fastsource.runtime.handles import InProcessRuntime, ReaderHandle, ReaderSpec, Runtime
from fastsource.kafka.reader.emitter import KafkaRecordEmitter
from fastsource.kafka.enumerator.kafka_enumerator import KafkaSourceEnumerator
from fastsource.kafka.enumerator.ranges import check_positive
from fastsource.errors import (CheckpointMismatchError, CheckpointTimeoutError, ConfigError,
                               DeadLettersWarning, DecodeError, FastsourceError, ReaderFailedError,
                               is_fatal)
from fastsource.formats import Binary, Format, FormatLike, as_format
from fastsource.formats.infer import TypeConflict, conform, merge_types
from fastsource.kafka.enumerator.offsets import OffsetsInitializer
from fastsource.base.reader.source_reader import InputStatus, ReaderOutput, SplitLineage
from fastsource.kafka.split import (KafkaPartitionSplit, KafkaPartitionSplitState, deserialize_split,
                              serialize_split)
from fastsource.io.sink import ParquetDatasetSink
from fastsource.kafka.reader.split_reader import BatchLimits, KafkaPartitionSplitReader, consumer_config
from fastsource.base.watermarks import WATERMARK_METADATA_KEY, WatermarkStrategy, WatermarkTracker
from fastsource.kafka.enumerator.subscriber import (KafkaSubscriber, PartitionSetSubscriber, TopicListSubscriber,
                                   TopicPatternSubscriber)
from fastsource.validation import (check_bool, check_bootstrap_servers, check_instance, check_int, check_name,
                                   check_number, check_partitions, check_path, check_properties, check_topics)

_UNSET: Any = object()
log = logging.getLogger(__name__)

MAX_REPLACEMENTS_IN_A_ROW = 3
TOPIC_RECREATED_POLICIES = ("fail", "earliest")


def default_parallelism() -> int:
    """Readers used by `read_all()` and the command line when none is given: two per CPU core this
    process may run on, at most 8. Each reader owns one librdkafka consumer, whose broker thread
    parses fetch responses while the reader's fetch thread copies records into Arrow, so two readers
    per core keep every core busy (bench/RESULTS.md: 4 readers on 2 cores read 100-byte records
    about 1.5x as fast as one). Readers left without a split cost no consumer."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(8, 2 * cores))


def default_runtime() -> Runtime:
    """The runtime of `open(runtime=None)`: readers in this process (tests swap it for one whose
    transport pickles every message)."""
    return InProcessRuntime()


class KafkaSource:
    """What to read and how: bootstrap servers, a subscription, starting and stopping offsets, formats.

    Exactly one of `topics`, `topic_pattern` and `partitions` selects the subscription.
    `stopping_offsets=None` makes the source unbounded. `properties` are librdkafka client properties
    passed through to every consumer. `batch_limits` shapes fetched batches; `request_timeout_s` bounds
    metadata and offset look-ups (and how long a broker never reached is waited for at start);
    `broker_timeout_ms` is how long every part of a running read waits out a lost cluster before
    failing; `watermark_strategy` sets watermarks, idleness and alignment.
    `max_records_per_split` and `min_splits` (bounded sources only) cut partitions into offset
    ranges that several readers read in parallel. `on_topic_recreated` decides what a restore does
    with a topic that was deleted and created again since the checkpoint (its topic id changed):
    `"fail"` (default) raises `TopicRecreatedError` naming the topic and both ids; `"earliest"` reads
    the new topic from its earliest offset. A recreation noticed while reading always fails the
    stream (records of the new topic may have been handed out as continuing the old one).
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
                 watermark_strategy: WatermarkStrategy = WatermarkStrategy(),
                 max_records_per_split: Optional[int] = None,
                 min_splits: Optional[int] = None,
                 on_topic_recreated: str = "fail") -> None:
        check_bootstrap_servers(bootstrap_servers)
        chosen = [n for n, v in (("topics", topics), ("topic_pattern", topic_pattern),
                                 ("partitions", partitions)) if v is not None]
        if len(chosen) != 1:
            raise ConfigError("give exactly one of topics, topic_pattern, partitions "
                              f"(got {', '.join(chosen) or 'none'})")
        topics = check_topics(topics) if topics is not None else None
        check_name("topic_pattern", topic_pattern, optional=True)
        partitions = check_partitions(partitions) if partitions is not None else None
        check_name("group_id", group_id, optional=True)
        if not isinstance(starting_offsets, OffsetsInitializer):
            raise ConfigError(f"starting_offsets must be an OffsetsInitializer, not {starting_offsets!r}")
        if stopping_offsets is _UNSET:
            stopping_offsets = OffsetsInitializer.latest()
        if stopping_offsets is not None and not isinstance(stopping_offsets, OffsetsInitializer):
            raise ConfigError(f"stopping_offsets must be an OffsetsInitializer or None, not "
                              f"{stopping_offsets!r}")
        if stopping_offsets is not None and stopping_offsets.kind == "committed" and not group_id:
            raise ConfigError("stopping_offsets=committed() needs a group_id")
        check_positive("max_records_per_split", max_records_per_split)
        check_positive("min_splits", min_splits)
        if stopping_offsets is None and (max_records_per_split is not None or min_splits is not None):
            raise ConfigError("max_records_per_split and min_splits cut bounded partitions into "
                              "offset ranges: they need stopping_offsets")
        self.bootstrap_servers = bootstrap_servers
        self.topics = topics
        self.topic_pattern = topic_pattern
        self.partitions = partitions
        self.group_id = group_id
        self.starting_offsets = starting_offsets
        self.stopping_offsets = stopping_offsets
        self.value_format = as_format(value_format, "value_format")
        self.key_format = as_format(key_format, "key_format")
        self.include_headers = check_bool("include_headers", include_headers)
        self.partition_discovery_interval_ms = check_int(
            "partition_discovery_interval_ms", partition_discovery_interval_ms, minimum=0, optional=True)
        self.properties = check_properties(properties)
        self.batch_limits = check_instance("batch_limits", batch_limits, BatchLimits, "a BatchLimits")
        self.request_timeout_s = check_number("request_timeout_s", request_timeout_s)
        self.broker_timeout_ms = check_int("broker_timeout_ms", broker_timeout_ms, minimum=1)
        self.watermark_strategy = check_instance("watermark_strategy", watermark_strategy,
                                                 WatermarkStrategy, "a WatermarkStrategy")
        self.max_records_per_split = max_records_per_split
        self.min_splits = min_splits
        if on_topic_recreated not in TOPIC_RECREATED_POLICIES:
            raise ConfigError(f"on_topic_recreated must be one of {TOPIC_RECREATED_POLICIES}, not "
                              f"{on_topic_recreated!r}")
        self.on_topic_recreated = on_topic_recreated
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

    def reader_spec(self) -> ReaderSpec:
        """What a runtime needs to build this source's readers, as plain data."""
        return ReaderSpec(self.consumer_config(), self.include_headers, self.batch_limits,
                          self.broker_timeout_ms, self.key_format, self.value_format,
                          self.group_id is not None, self.watermark_strategy)

    def bound_formats(self) -> tuple[Format, Format]:
        """The key and value formats bound to this read (`Format.bind`): called once as a read
        starts, so a format that takes its schema from a registry subject gets its latest version
        then; the names are None for a topic pattern."""
        topics = self.topics if self.topics is not None else (
            sorted({topic for topic, _ in self.partitions}) if self.partitions is not None else None)
        return (self.key_format.bind(topics, True, self.broker_timeout_ms),
                self.value_format.bind(topics, False, self.broker_timeout_ms))

    def subscription(self) -> dict[str, Any]:
        """The subscription as stored in checkpoints: topics, a pattern or a partition set."""
        if self.topics is not None:
            return {"topics": sorted(self.topics)}
        if self.topic_pattern is not None:
            return {"topic_pattern": self.topic_pattern}
        return {"partitions": sorted([t, p] for t, p in self.partitions or [])}

    def open(self, parallelism: int = 1, checkpoint_dir: Optional[str | os.PathLike] = None,
             runtime: Optional[Runtime] = None, restore: str = "latest") -> "SourceStream":
        """Start reading with `parallelism` readers; restores from `checkpoint_dir` if it holds a
        checkpoint, which the stream locks for as long as it is open (`DirectoryLockedError` names
        the holder when another process or stream has it). `restore="latest"` takes the newest
        checkpoint and refuses a damaged one naming its file and field; `"latest-intact"` takes the
        newest intact one, naming each damaged file it skips in a warning. `runtime` creates the
        readers and their transport (default: in this process, `InProcessRuntime()`). Use as a
        context manager so that every thread and consumer is released."""
        check_int("parallelism", parallelism, minimum=1)
        check_path("checkpoint_dir", checkpoint_dir, optional=True)
        if restore not in RESTORE_MODES:
            raise ConfigError(f"restore must be one of {RESTORE_MODES}, not {restore!r}")
        return SourceStream(self, parallelism, checkpoint_dir, runtime, restore)

    def read_all(self, parallelism: Optional[int] = None,
                 return_dead_letters: bool = False) -> pa.Table | tuple[pa.Table, pa.Table]:
        """Read a bounded source to its stopping offsets into one table, with `parallelism` readers
        (default: `default_parallelism()`), cutting partitions into at least `parallelism` offset
        ranges unless `min_splits` is set, so every reader has work. Each partition's rows come in
        offset order. A format that infers its type (`Json()` without a schema) gives one type
        merged over all batches.

        Records a format with `errors="dead_letter"` could not decode are left out of the table:
        with `return_dead_letters=True` the result is `(table, dead_letters)` (the schema of
        `SourceStream.dead_letters()`, ordered by topic, partition and offset); otherwise a
        `DeadLettersWarning` gives their count."""
        check_bool("return_dead_letters", return_dead_letters)
        if not self.bounded:
            raise ConfigError("read_all() needs a bounded source: set stopping_offsets")
        if parallelism is None:
            parallelism = default_parallelism()
        check_int("parallelism", parallelism, minimum=1)
        source = self
        if self.min_splits is None:
            source = copy.copy(self)
            source.min_splits = parallelism
        with source.open(parallelism=parallelism) as stream:
            stream._merge_inferred = True
            batches = list(stream._batches_with_lineage())
            schema = stream.schema
            if stream._formats.schema is None and batches:
                batches, schema = _merged(batches)
            table = _in_offset_order(batches, schema)
            dead = stream.dead_letters()
        if dead.num_rows:  # readers divert in parallel: give them in the table's order
            import pyarrow.compute as pc

            keys = pa.table({"t": dead.column("topic").cast(pa.string()),
                             "p": dead.column("partition"), "o": dead.column("offset")})
            dead = dead.take(pc.sort_indices(keys, sort_keys=[("t", "ascending"), ("p", "ascending"),
                                                              ("o", "ascending")]))
        if return_dead_letters:
            return table, dead
        if dead.num_rows:
            warnings.warn(f"read_all() left out {dead.num_rows:,} undecodable record(s) "
                          "(errors=\"dead_letter\"); call read_all(return_dead_letters=True) to "
                          "get them", DeadLettersWarning, stacklevel=2)
        return table


def _batch_error(batch: pa.RecordBatch, message: str) -> DecodeError:
    """A DecodeError at the first record of `batch`."""
    topic, partition, offset = (batch.column(i)[0].as_py() for i in range(3))
    return DecodeError(f"{message} (records of {topic}[{partition}] from offset {offset} among them): "
                       "give the format a schema, e.g. Json(schema=...)", topic, partition, offset)


def _inferred_columns(schema: pa.Schema) -> list[int]:
    return [schema.get_field_index(name) for name in ("key", "value")]


def _merged(batches: list[tuple[pa.RecordBatch, tuple[SplitLineage, ...]]]
            ) -> tuple[list[tuple[pa.RecordBatch, tuple[SplitLineage, ...]]], pa.Schema]:
    """Every batch conformed to one schema whose key and value types are merged over all batches
    (in an order that depends on the types only, not on which batch came first)."""
    schema = batches[0][0].schema
    columns = _inferred_columns(schema)
    for index in columns:
        types = {}
        for batch, _ in batches:
            types.setdefault(str(batch.schema.field(index).type), (batch.schema.field(index).type, batch))
        merged = None
        for name in sorted(types):
            type_, batch = types[name]
            try:
                merged = type_ if merged is None else merge_types(merged, type_)
            except TypeConflict as exc:
                raise _batch_error(batch, f"the inferred {schema.field(index).name} types disagree: "
                                   f"{exc}") from exc
        schema = schema.set(index, schema.field(index).with_type(merged))
    return [(_conformed(batch, schema, columns), lineage) for batch, lineage in batches], schema


def _conformed(batch: pa.RecordBatch, schema: pa.Schema, columns: list[int]) -> pa.RecordBatch:
    arrays = list(batch.columns)
    for index in columns:
        arrays[index] = conform(arrays[index], schema.field(index).type)
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _in_offset_order(batches: list[tuple[pa.RecordBatch, tuple[SplitLineage, ...]]],
                     schema: pa.Schema) -> pa.Table:
    """One table in which every partition's rows come in offset order. Batches arrive in order per
    split; only partitions read as several ranges (by several readers) need their batches cut by
    partition and the pieces sorted by where they start."""
    splits: dict[tuple[str, int], set[str]] = {}
    for _, lineage in batches:
        for entry in lineage:
            splits.setdefault(entry.split.topic_partition, set()).add(entry.split_id)
    if all(len(ids) == 1 for ids in splits.values()):
        return pa.Table.from_batches([batch for batch, _ in batches], schema=schema)
    pieces: list[tuple[tuple[str, int, int], int, pa.RecordBatch]] = []
    for seq, (batch, lineage) in enumerate(batches):
        pieces.extend(_by_partition(batch, lineage, seq))
    pieces.sort(key=lambda piece: piece[:2])
    return pa.Table.from_batches([piece for _, _, piece in pieces], schema=schema)


def _by_partition(batch: pa.RecordBatch, lineage: tuple[SplitLineage, ...],
                  seq: int) -> list[tuple[tuple[str, int, int], int, pa.RecordBatch]]:
    """A batch as pieces of one partition each, keyed by where they start."""
    if len({entry.split.topic_partition for entry in lineage}) <= 1:
        first = min(((e.split.topic, e.split.partition, e.first_offset) for e in lineage),
                    default=("", -1, -1))
        return [(first, seq, batch)]
    import pyarrow.compute as pc  # imported on use: it costs ~35 ms at start-up

    first: dict[tuple[str, int], int] = {}  # a batch may hold two ranges of one partition
    for entry in lineage:
        tp = entry.split.topic_partition
        first[tp] = min(entry.first_offset, first.get(tp, entry.first_offset))
    one_topic = len({topic for topic, _ in first}) == 1
    pieces = []
    for (topic, partition), offset in first.items():
        mask = pc.equal(batch.column(1), pa.scalar(partition, pa.int32()))
        if not one_topic:
            mask = pc.and_(mask, pc.equal(batch.column(0).cast(pa.string()), topic))
        piece = batch.filter(mask)
        if piece.num_rows:
            pieces.append(((topic, partition, offset), seq, piece))
    return pieces


class SourceStream:
    """A running read: the coordinator and the enumerator in this process, `parallelism` readers
    wherever the runtime puts them, driven through handles.

    Iterating yields `pyarrow.RecordBatch`es. Split positions advance here, when a batch is handed
    out (each batch carries its lineage), so `checkpoint()` between batches makes a durable snapshot
    covering exactly the batches already yielded, and a failed reader is replaced with its splits
    resuming right after the last record handed out. `poll`, iteration, `checkpoint`, `take_back`
    and `dead_letters` may be called from several threads: they run one at a time (a lock), so each
    batch goes to exactly one caller and a checkpoint falls between two batches.
    """

    def __init__(self, source: KafkaSource, parallelism: int,
                 checkpoint_dir: Optional[str | os.PathLike],
                 runtime: Optional[Runtime] = None, restore: str = "latest") -> None:
        if not isinstance(parallelism, int) or isinstance(parallelism, bool) or parallelism < 1:
            raise ConfigError(f"parallelism must be a positive integer, not {parallelism!r}")
        self.source = source
        self.parallelism = parallelism
        self._available = threading.Event()
        self._lock = threading.RLock()
        self._failure: Optional[BaseException] = None
        self._closed = False
        self.readers: list[ReaderHandle] = []
        self._sinks: list[ParquetDatasetSink] = []
        self._dir_lock: Optional[DirectoryLock] = None
        self._pinned: Optional[pa.Schema] = None
        self._merge_inferred = False
        self._left_out: set[str] = set()
        self._runtime: Runtime = runtime if runtime is not None else default_runtime()
        self._admin = source.admin()
        self._store: Optional[CheckpointStore] = None
        try:
            if checkpoint_dir is not None:
                self._store = CheckpointStore(checkpoint_dir, lock=True)
                self._dir_lock = self._store.directory_lock
            restored = self._store.restore_point(restore) if self._store is not None else None
            self.restored_checkpoint_id = restored["checkpoint_id"] if restored else None
            self._identity = self._source_identity() if self._store is not None else None
            if restored is not None:
                self._check_identity(restored)
        except BaseException:
            self.close()
            raise
        self._transport = self._runtime.create_transport()
        self._coordinator = SourceCoordinator(self._transport, parallelism, self._on_failure,
                                              source.watermark_strategy.alignment_max_drift_ms)
        key_format, value_format = source.bound_formats()
        self._spec = dataclasses.replace(source.reader_spec(), health=self._admin.health,
                                         key_format=key_format, value_format=value_format)
        raw_schema = KafkaPartitionSplitReader.raw_schema(source.include_headers)
        self._formats = KafkaRecordEmitter(raw_schema, key_format, value_format)
        self._peeked: Optional[tuple[pa.RecordBatch, tuple[SplitLineage, ...]]] = None
        self._ended: set[int] = set()
        self._next_reader = 0
        self._positions: dict[str, KafkaPartitionSplitState] = {}
        self._finished: set[str] = set()
        self._last_lineage: tuple[SplitLineage, ...] = ()
        self._reopened: dict[str, KafkaPartitionSplit] = {}
        self._taken_back = False
        self._replaced_in_a_row: dict[int, int] = {}
        self._dead_letters: list[pa.RecordBatch] = []
        self._committed: dict[tuple[str, int], int] = {}
        self._final_commit_done = False
        self._watermarks = WatermarkTracker(source.watermark_strategy)
        self._started_at = time.monotonic()
        try:
            enumerator = KafkaSourceEnumerator(
                source._subscriber(), self._admin, self._coordinator, source.starting_offsets,
                source.stopping_offsets, source.group_id, source.partition_discovery_interval_ms,
                state=restored["enumerator"] if restored else None,
                max_records_per_split=source.max_records_per_split, min_splits=source.min_splits,
                restored_splits=[deserialize_split(d) for d in restored["splits"]] if restored else None,
                on_topic_recreated=source.on_topic_recreated)
            self.readers = [self._runtime.create_reader(i, self._spec, self._transport, self._available)
                            for i in range(parallelism)]
            self._coordinator.start(enumerator)
            for reader in self.readers:
                reader.start()
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ checkpoint identity

    def _source_identity(self) -> dict[str, Any]:
        """What a checkpoint belongs to: the cluster (its id, else the bootstrap string) and the
        subscription."""
        return {"cluster_id": self._admin.cluster_id(), "bootstrap": self.source.bootstrap_servers,
                "subscription": self.source.subscription()}

    def _check_identity(self, restored: dict[str, Any]) -> None:
        """Refuse a checkpoint of another cluster or subscription (older checkpoints carry none)."""
        theirs = restored.get("source")
        if theirs is None:
            return
        ours = self._identity or {}
        if theirs.get("subscription") != ours.get("subscription"):
            raise CheckpointMismatchError(
                f"checkpoint {restored['checkpoint_id']} in {self._store.directory} was taken for "
                f"subscription {theirs.get('subscription')}, not {ours.get('subscription')}: use "
                "another checkpoint directory for another subscription")
        same_id = theirs.get("cluster_id") and ours.get("cluster_id")
        if (theirs.get("cluster_id") != ours.get("cluster_id")) if same_id else \
                (theirs.get("bootstrap") != ours.get("bootstrap")):
            raise CheckpointMismatchError(
                f"checkpoint {restored['checkpoint_id']} in {self._store.directory} was taken on "
                f"cluster {theirs.get('cluster_id') or theirs.get('bootstrap')}, not "
                f"{ours.get('cluster_id') or ours.get('bootstrap')}: use another checkpoint "
                "directory for another cluster")

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
        schema = self._formats.schema
        if schema is not None:
            return schema
        if self._pinned is not None:
            return self._pinned
        with self._lock:
            if self._peeked is None:
                self._peeked = self._poll(None)
        if self._peeked is not None:
            return self._peeked[0].schema
        return self._formats.raw_schema

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
        columns = tail.select(["topic", "partition", "offset"]).to_pydict()
        offsets: dict[tuple[str, int], list[int]] = {}
        for topic, partition, offset in zip(columns["topic"], columns["partition"], columns["offset"]):
            offsets.setdefault((topic, partition), []).append(offset)
        for entry in self._last_lineage:
            mine = [o for o in offsets.get(entry.split.topic_partition, ())
                    if entry.first_offset <= o < entry.next_offset]
            if not mine:
                continue
            offset = min(mine)
            state = self._positions.get(entry.split_id)
            if state is not None:
                state.current_offset = offset
            else:  # the split finished within that batch: it is unfinished again
                self._finished.discard(entry.split_id)
                self._reopened[entry.split_id] = entry.split.with_starting_offset(offset)
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
                if self._formats.schema is None and not self._merge_inferred:
                    batch = self._pin_inferred(batch)
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

    def _pin_inferred(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """A stream gives every batch one schema even when a format infers its type batch by batch
        (`Json()` without a schema, in any reader, local or remote): the first batch handed out pins
        it; later batches are conformed to it (missing fields and null columns take its types).
        A field it lacks is left out, with a warning naming it once; a field of another type fails
        the read with a `DecodeError` that says to give a schema."""
        columns = _inferred_columns(batch.schema)
        if self._pinned is None:
            if any(pa.types.is_struct(t) and t.num_fields == 0
                   for t in (batch.schema.field(i).type for i in columns)):
                return batch  # only nulls and empty objects so far: nothing to pin yet
            self._pinned = batch.schema
            return batch
        for index in columns:
            pinned, own = self._pinned.field(index).type, batch.schema.field(index).type
            try:
                merged = merge_types(pinned, own)
            except TypeConflict as exc:
                raise _batch_error(batch, f"the {self._pinned.field(index).name} type changed after "
                                   f"the first batch pinned it: {exc}") from exc
            if merged != pinned and pa.types.is_struct(merged):
                new = [f.name for f in merged if pinned.get_field_index(f.name) < 0
                       and f.name not in self._left_out]
                if new:
                    self._left_out.update(new)
                    log.warning("field(s) %s of %s appear after the first batch pinned its type and "
                                "are left out; give the format a schema to read them",
                                ", ".join(new), self._pinned.field(index).name)
                if any(pinned.get_field_index(f.name) >= 0 and f.type != pinned.field(f.name).type
                       for f in merged):
                    raise _batch_error(batch, f"the {self._pinned.field(index).name} type changed "
                                       f"after the first batch pinned it as {pinned}: now {own}")
        return _conformed(batch, self._pinned, columns)

    def _hand_over(self, reader_id: int, output: ReaderOutput) -> Optional[pa.RecordBatch]:
        """Advance the positions of the batch's splits (they are now handed out)."""
        for split in output.added:
            if split.split_id not in self._positions:
                self._positions[split.split_id] = KafkaPartitionSplitState(split)
        for entry in output.lineage:
            state = self._positions.get(entry.split_id)
            if state is None:
                state = self._positions[entry.split_id] = KafkaPartitionSplitState(
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

    # ------------------------------------------------------------------ failover

    def _replace(self, reader_id: int, exc: Exception) -> None:
        """A reader failed. Fatal errors fail the stream; otherwise the reader is closed (batches in
        flight from it are dropped), its splits go back to the enumerator at their hand-over
        positions, and a new reader with the same id takes them: nothing lost or repeated, no
        rollback. A reader replaced more than MAX_REPLACEMENTS_IN_A_ROW times without handing out
        a record fails the stream."""
        if is_fatal(exc):
            if isinstance(exc, FastsourceError):
                raise exc
            raise FastsourceError(f"reader {reader_id} failed: {type(exc).__name__}: {exc}") from exc
        count = self._replaced_in_a_row.get(reader_id, 0) + 1
        if count > MAX_REPLACEMENTS_IN_A_ROW:
            raise ReaderFailedError(f"reader {reader_id} failed {count} times in a row without "
                                    f"handing out a record; last error: {exc}") from exc
        self._replaced_in_a_row[reader_id] = count
        log.warning("reader %d failed (%s: %s); replacing it (attempt %d of %d), its splits resume "
                    "after the last record handed out", reader_id, type(exc).__name__, exc, count,
                    MAX_REPLACEMENTS_IN_A_ROW)
        old = self.readers[reader_id]
        try:
            self._dead_letters.extend(old.dead_letters())
        finally:
            old.close()
        positions = {split_id: state.current_offset for split_id, state in self._positions.items()}
        self._coordinator.reader_failed(ReaderFailedEvent(reader_id, positions)).result(60)
        self._ended.discard(reader_id)
        self.readers[reader_id] = self._runtime.create_reader(reader_id, self._spec, self._transport,
                                                              self._available)
        self.readers[reader_id].start()

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
        return pa.Table.from_batches(batches, schema=self._formats.dead_letter_schema)

    def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:
        """The Arrow PyCapsule stream protocol: pyarrow, polars, duckdb read the stream directly."""
        reader = pa.RecordBatchReader.from_batches(self.schema, self)
        return reader.__arrow_c_stream__(requested_schema)

    # ------------------------------------------------------------------ checkpoints and commits

    def _snapshot(self, checkpoint_id: int) -> tuple[dict[str, Any], list[KafkaPartitionSplit]]:
        """The enumerator's state and every unfinished assigned split at its hand-over position."""
        enumerator_state, assigned = self._coordinator.snapshot(checkpoint_id).result(timeout=60)
        splits = []
        for split in assigned:
            if split.split_id in self._finished:
                continue
            state = self._positions.get(split.split_id)
            splits.append(split.with_starting_offset(state.current_offset) if state else split)
        held = {split.split_id for split in splits}
        splits.extend(split for split_id, split in self._reopened.items() if split_id not in held)
        return enumerator_state, splits

    def checkpoint(self) -> int:
        """Snapshot the enumerator and the hand-over positions; durable when this returns. Needs
        checkpoint_dir. Offsets go to the consumer group (with group_id) once it is durable. A
        checkpoint that fails (e.g. a CheckpointError) commits nothing; the next one covers it all."""
        with self._lock:
            return self._checkpoint()

    def _checkpoint(self) -> int:
        if self._closed:
            raise FastsourceError("checkpoint() on a closed stream: nothing is left to snapshot")
        if self._store is None:
            raise ConfigError("checkpoint() needs the stream to be opened with a checkpoint_dir")
        if self._failure is not None:
            raise self._failure
        checkpoint_id = self._store.next_id()
        try:
            enumerator_state, splits = self._snapshot(checkpoint_id)
            readers = [reader.snapshot(checkpoint_id) for reader in self.readers]
        except (TimeoutError, concurrent.futures.TimeoutError) as exc:
            raise CheckpointTimeoutError(f"checkpoint {checkpoint_id} timed out: {exc}") from exc
        for sink in self._sinks:
            sink.pre_commit(checkpoint_id)
        self._store.write(checkpoint_id, {
            "source": self._identity,
            "parallelism": self.parallelism,
            "enumerator": enumerator_state,
            "splits": [serialize_split(s) for s in splits],
            "readers": readers,
        })
        for sink in self._sinks:
            sink.commit(checkpoint_id)
        self._commit(checkpoint_id, _group_offsets(enumerator_state, splits))
        return checkpoint_id

    def commit(self) -> None:
        """Commit the offsets handed out so far to the consumer group now, without a checkpoint, and
        wait for the answer: per partition the next offset to hand out (its end once read to the
        end). For outputs that deliver every batch as it is handed out, as Kafka's console consumer
        commits what it printed; `metrics()["commits_failed"]` counts a commit that failed. Needs
        `group_id`."""
        if self.source.group_id is None:
            raise ConfigError("commit() needs a group_id on the source")
        if self._closed:
            raise FastsourceError("commit() on a closed stream: its readers are gone")
        enumerator_state, splits = self._snapshot(0)
        self._commit(0, _group_offsets(enumerator_state, splits), flush=True)

    def _commit(self, checkpoint_id: int, offsets: list[tuple[str, int, int]],
                flush: bool = False) -> None:
        """Send `offsets` to the group through the first reader that has a consumer."""
        if self.source.group_id is None or not offsets:
            return
        for reader in self.readers:
            if reader.notify_checkpoint_complete(checkpoint_id, offsets, flush):
                self._committed.update({(t, p): o for t, p, o in offsets})
                return
        log.debug("no reader had a consumer to commit offsets of checkpoint %d with", checkpoint_id)

    def _commit_final(self) -> None:
        """At the end of a bounded read, the group gets every partition's end, flushed before the
        readers close (Flink commits finished splits' offsets too)."""
        if self._final_commit_done or self.source.group_id is None:
            return
        self._final_commit_done = True
        enumerator_state, splits = self._snapshot(0)
        self._commit(0, _group_offsets(enumerator_state, splits), flush=True)

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
                "broker_outages": self._admin.health.outages,
                "broker_down_s": self._admin.health.down_s(),
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
        self._admin.close()
        if hasattr(self, "_coordinator"):
            self._coordinator.close()
        self._runtime.close()
        if self._dir_lock is not None:
            self._dir_lock.release()


def _group_offsets(enumerator_state: dict[str, Any],
                   assigned: list[KafkaPartitionSplit]) -> list[tuple[str, int, int]]:
    """The offset to commit per partition: the end of its completed, contiguous prefix, i.e. the
    lowest position of its unfinished splits (assigned or pending), or its end once all finished."""
    lowest: dict[tuple[str, int], int] = {}
    pending = [deserialize_split(d) for d in enumerator_state.get("pending_splits", [])]
    for split in assigned + pending:
        tp = split.topic_partition
        lowest[tp] = min(lowest.get(tp, split.starting_offset), split.starting_offset)
    for topic, partition, end in enumerator_state.get("partition_ends", []):
        if end is not None:
            lowest.setdefault((topic, partition), end)
    return [(t, p, o) for (t, p), o in sorted(lowest.items()) if o >= 0]
