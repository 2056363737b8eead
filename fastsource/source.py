"""The user-facing source: `KafkaSource`, the configuration of a read. `open()` builds the neutral
`SourceSpec` from the Kafka layer and starts the runtime's `SourceStream` on it; `read_all()` reads a
bounded source into one table."""
from __future__ import annotations

import copy
import dataclasses
import os
import warnings
from typing import Any, Iterable, Mapping, Optional, Sequence

import pyarrow as pa

from fastsource.base.enumerator import SplitEnumeratorContext
from fastsource.base.reader.source_reader import SplitLineage
from fastsource.base.watermarks import WatermarkStrategy
from fastsource.errors import CheckpointMismatchError, ConfigError, DeadLettersWarning
from fastsource.formats import Binary, Format, FormatLike, as_format
from fastsource.kafka.admin import BrokerHealth, KafkaAdmin
from fastsource.kafka.enumerator.kafka_enumerator import KafkaSourceEnumerator, group_offsets
from fastsource.kafka.enumerator.offsets import OffsetsInitializer
from fastsource.kafka.enumerator.ranges import check_positive
from fastsource.kafka.enumerator.subscriber import (KafkaSubscriber, PartitionSetSubscriber, TopicListSubscriber,
                                                    TopicPatternSubscriber)
from fastsource.kafka.reader.emitter import KafkaRecordEmitter
from fastsource.kafka.reader.spec import KafkaReaderSpec
from fastsource.kafka.reader.split_reader import BatchLimits, KafkaPartitionSplitReader, consumer_config
from fastsource.kafka.schema import InferredSchemaPin, merge_inferred
from fastsource.kafka.split import KafkaPartitionSplitState, deserialize_split, first_positions, serialize_split
from fastsource.runtime.checkpoint import RESTORE_MODES
from fastsource.runtime.handles import InProcessRuntime, Runtime
from fastsource.runtime.spec import BoundReaders, SourceSpec
from fastsource.runtime.stream import SourceStream
from fastsource.validation import (check_bool, check_bootstrap_servers, check_instance, check_int, check_name,
                                   check_number, check_partitions, check_path, check_properties, check_topics)

_UNSET: Any = object()

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

    def reader_spec(self) -> KafkaReaderSpec:
        """What a runtime needs to build this source's readers, as plain data."""
        return KafkaReaderSpec(self.consumer_config(), self.include_headers, self.batch_limits,
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
        return SourceStream(self.source_spec(), parallelism, checkpoint_dir,
                            runtime if runtime is not None else default_runtime(), restore)

    def source_spec(self) -> SourceSpec:
        """The neutral spec of one read of this source (it holds an admin client: a stream opened
        on it closes it)."""
        admin = self.admin()

        def bind_readers() -> BoundReaders:
            key_format, value_format = self.bound_formats()
            spec = dataclasses.replace(self.reader_spec(), health=admin.health, key_format=key_format,
                                       value_format=value_format)
            raw_schema = KafkaPartitionSplitReader.raw_schema(self.include_headers)
            return BoundReaders(spec, KafkaRecordEmitter(raw_schema, key_format, value_format))

        def create_enumerator(context: SplitEnumeratorContext,
                              restored: Optional[dict[str, Any]]) -> KafkaSourceEnumerator:
            return KafkaSourceEnumerator(
                self._subscriber(), admin, context, self.starting_offsets, self.stopping_offsets,
                self.group_id, self.partition_discovery_interval_ms,
                state=restored["enumerator"] if restored else None,
                max_records_per_split=self.max_records_per_split, min_splits=self.min_splits,
                restored_splits=[deserialize_split(d) for d in restored["splits"]] if restored else None,
                on_topic_recreated=self.on_topic_recreated)

        def identity() -> dict[str, Any]:
            """What a checkpoint belongs to: the cluster (its id, else the bootstrap string) and the
            subscription."""
            return {"cluster_id": admin.cluster_id(), "bootstrap": self.bootstrap_servers,
                    "subscription": self.subscription()}

        return SourceSpec(bind_readers=bind_readers, create_enumerator=create_enumerator,
                          split_state=KafkaPartitionSplitState, serialize_split=serialize_split,
                          identity=identity, check_identity=_check_identity, schema_pin=InferredSchemaPin,
                          first_positions=first_positions,
                          watermark_strategy=self.watermark_strategy, health=admin.health, close=admin.close,
                          group_offsets=group_offsets if self.group_id is not None else None)

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
            if stream._schemas.schema is None and batches:
                batches, schema = merge_inferred(batches)
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


def _check_identity(theirs: dict[str, Any], ours: dict[str, Any], where: str) -> None:
    """Refuse a checkpoint (`where`) of another cluster or subscription."""
    if theirs.get("subscription") != ours.get("subscription"):
        raise CheckpointMismatchError(
            f"{where} was taken for subscription {theirs.get('subscription')}, not "
            f"{ours.get('subscription')}: use another checkpoint directory for another subscription")
    same_id = theirs.get("cluster_id") and ours.get("cluster_id")
    if (theirs.get("cluster_id") != ours.get("cluster_id")) if same_id else \
            (theirs.get("bootstrap") != ours.get("bootstrap")):
        raise CheckpointMismatchError(
            f"{where} was taken on cluster {theirs.get('cluster_id') or theirs.get('bootstrap')}, not "
            f"{ours.get('cluster_id') or ours.get('bootstrap')}: use another checkpoint directory for "
            "another cluster")
