"""`read_kafka` for Ray Data: the arguments and columns of `ray.data.read_kafka`, read by the compiled core.

The driver resolves every partition's start and end offsets once (one admin client, a few list-offsets
requests) and cuts them into offset ranges (`plan_ranges`). Each Ray read task reads one fixed range
with one fastsource reader and yields its Arrow batches as blocks: no Python object per record, and a
retried task reads the same offsets again, so it yields the same rows.

Differences from `ray.data.read_kafka` (ray 2.60.0), all deliberate:

- Column types are the ones Ray *declares* (`KAFKA_SCHEMA`): offset int64, key binary, value binary,
  topic string, partition int32, timestamp int64 (ms), timestamp_type int32, headers
  map<string, binary>. Ray's blocks are built with `pa.Table.from_pylist`, so their types are inferred
  per block of 1,000 records (partition and timestamp_type int64, a key column of only null keys
  `null`, headers a struct with one field per header name seen).
- timestamp is null where the record has none (timestamp_type 0); headers keep every header of a
  record in order, repeated names included (Ray keeps the last value per name); records without
  headers have an empty map. With `include_headers=False` there is no headers column.
- With `key_format`/`value_format` the key and value columns are decoded (e.g. `Json(schema)` gives a
  struct column); formats' `errors="dead_letter"` is refused (a read task has nowhere to put them).
- Offsets are resolved once, in the driver, when `read_kafka` is called (Ray resolves them in each
  task when it runs): every task, a retry of it, and a re-execution of the dataset read exactly the
  planned ranges. "latest", a datetime with no later record, and an
  integer end past the end all mean the partition's end (under read_committed, the default of both,
  the last stable offset); an integer start below the first offset still there starts at that offset
  (with a warning), as in Ray; a start after the end raises ValueError naming topic and partition.
- A range ends when the consumer's position reaches its end offset, so transaction markers and
  offsets removed by compaction inside or at the end of the range are skipped without waiting; every
  row has `start <= offset < end`. Records deleted by retention between planning and reading are an
  error (`OffsetOutOfRangeError`), never a silently shorter result.
- Tasks: one per partition, as in Ray, unless `max_records_per_split` or `override_num_blocks` cut
  partitions into more ranges (Spark's semantics, see `fastsource.kafka.enumerator.ranges`): one hot
  partition is read by several tasks at once. Without `override_num_blocks`, `read_kafka` asks Ray for
  one output block per task (Ray's `read_kafka` lets Ray guess 200 and slice its blocks to match). `KafkaDatasource` takes its task count from these
  arguments, not from Ray's `parallelism` hint (Ray's automatic guess, 200 by default, would cut
  partitions into tiny ranges).
- An unknown topic raises `UnknownTopicError`; `group.id` in `consumer_config` is ignored (nothing is
  committed; each reader uses a group id of its own).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterator, Literal, Mapping, Optional, Sequence, Union

import pyarrow as pa
import ray
from ray.data import Dataset
from ray.data.block import BlockMetadata
from ray.data.datasource import Datasource, ReadTask

from fastsource.kafka.enumerator.offsets import OffsetsInitializer
from fastsource.kafka.enumerator.ranges import OffsetRange, plan_ranges
from fastsource.kafka.enumerator.subscriber import TopicListSubscriber
from fastsource.errors import ConfigError
from fastsource.formats import Binary, Format, FormatLike, as_format
from fastsource.kafka.admin import KafkaAdmin, TopicPartitionKey
from fastsource.kafka.reader.emitter import KafkaRecordEmitter
from fastsource.kafka.reader.split_reader import BatchLimits, KafkaPartitionSplitReader
from fastsource.source import KafkaSource

log = logging.getLogger(__name__)

OffsetSpec = Union[int, datetime, str]
OffsetArg = Union[OffsetSpec, Mapping[str, Mapping[int, OffsetSpec]]]

KAFKA_SCHEMA = pa.schema([
    ("offset", pa.int64()),
    ("key", pa.binary()),
    ("value", pa.binary()),
    ("topic", pa.string()),
    ("partition", pa.int32()),
    ("timestamp", pa.int64()),
    ("timestamp_type", pa.int32()),
    ("headers", pa.map_(pa.string(), pa.binary())),
])

# KafkaAuthConfig (kafka-python names) -> librdkafka properties, for `kafka_auth_config`.
_AUTH_PROPERTIES = {
    "security_protocol": "security.protocol", "sasl_mechanism": "sasl.mechanism",
    "sasl_plain_username": "sasl.username", "sasl_plain_password": "sasl.password",
    "sasl_kerberos_service_name": "sasl.kerberos.service.name",
    "sasl_kerberos_name": "sasl.kerberos.principal", "ssl_cafile": "ssl.ca.location",
    "ssl_certfile": "ssl.certificate.location", "ssl_keyfile": "ssl.key.location",
    "ssl_password": "ssl.key.password", "ssl_ciphers": "ssl.cipher.suites",
    "ssl_crlfile": "ssl.crl.location",
}
_AUTH_UNSUPPORTED = ("ssl_context", "sasl_oauth_token_provider", "sasl_kerberos_domain_name")


def _epoch_ms(moment: datetime) -> int:
    """Epoch milliseconds of `moment`; a naive datetime is taken as UTC (as Ray does)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000)


def _check_offset(name: str, value: Any, forbidden: str, where: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, (int, datetime, str)):
        raise ConfigError(f"{name}{where} must be an int, a datetime or a string, not {value!r}")
    if isinstance(value, str) and value != ("earliest" if forbidden == "latest" else "latest"):
        raise ConfigError(f"{name}{where} cannot be {value!r}")


def _check_offsets(name: str, value: Any, forbidden: str) -> None:
    """Ray's rules: a spec or `{topic: {partition: spec}}`; start never "latest", end never "earliest"."""
    if not isinstance(value, Mapping):
        _check_offset(name, value, forbidden)
        return
    for topic, partitions in value.items():
        if not isinstance(partitions, Mapping):
            raise ConfigError(f"{name}[{topic!r}] must map partition ids to offsets, not {partitions!r}")
        for partition, spec in partitions.items():
            if isinstance(partition, bool) or not isinstance(partition, int):
                raise ConfigError(f"{name}[{topic!r}] keys must be partition ids (int), not {partition!r}")
            _check_offset(name, spec, forbidden, f"[{topic!r}][{partition}]")


def client_properties(kafka_auth_config: Any = None,
                      consumer_config: Optional[Mapping[str, Any]] = None) -> dict[str, str]:
    """librdkafka properties from Ray's `kafka_auth_config` (kafka-python names) or `consumer_config`.

    `bootstrap.servers` and `group.id` are dropped: the first comes from `bootstrap_servers`, and
    nothing is committed, so each reader's consumer keeps a group id of its own.
    """
    if kafka_auth_config is not None and consumer_config is not None:
        raise ConfigError("give only one of kafka_auth_config (deprecated by Ray) or consumer_config")
    properties: dict[str, str] = {}
    if kafka_auth_config is not None:
        for name in _AUTH_UNSUPPORTED:
            if getattr(kafka_auth_config, name, None) is not None:
                log.warning("kafka_auth_config.%s has no librdkafka equivalent and is ignored", name)
        for name, prop in _AUTH_PROPERTIES.items():
            value = getattr(kafka_auth_config, name, None)
            if value is not None:
                properties[prop] = str(value)
    for key, value in (consumer_config or {}).items():
        if key in ("bootstrap.servers", "group.id"):
            log.warning("consumer_config[%r] is ignored (see fastsource.ray.read_kafka)", key)
            continue
        properties[str(key)] = str(value).lower() if isinstance(value, bool) else str(value)
    return properties


def to_ray_block(batch: pa.RecordBatch, include_headers: bool) -> pa.Table:
    """A fastsource batch in `ray.data.read_kafka`'s column order and types (key and value as decoded)."""
    columns = [batch.column("offset"), batch.column("key"), batch.column("value"),
               batch.column("topic").cast(pa.string()), batch.column("partition"),
               batch.column("timestamp").cast(pa.int64()),
               batch.column("timestamp_type").cast(pa.int32())]
    names = KAFKA_SCHEMA.names[:7]
    if include_headers:
        headers = batch.column("headers")
        entries = headers.values
        columns.append(pa.MapArray.from_arrays(headers.offsets, entries.field("key"),
                                               entries.field("value")))
        names = KAFKA_SCHEMA.names
    return pa.Table.from_arrays(columns, names=names)


def block_schema(key_format: Format, value_format: Format, include_headers: bool) -> Optional[pa.Schema]:
    """The blocks' schema, or None while a format infers its type from the data."""
    emitter = KafkaRecordEmitter(KafkaPartitionSplitReader.raw_schema(include_headers), key_format,
                                 value_format)
    if emitter.schema is None:
        return None
    schema = KAFKA_SCHEMA if include_headers else pa.schema(list(KAFKA_SCHEMA)[:7])
    schema = schema.set(1, pa.field("key", emitter.schema.field("key").type))
    return schema.set(2, pa.field("value", emitter.schema.field("value").type))


@dataclass
class RangeRead:
    """A read task's work: one offset range, read by one fastsource reader. Picklable; running it
    twice yields the same rows (the range is fixed)."""

    bootstrap_servers: str
    rng: OffsetRange
    properties: dict[str, str]
    key_format: Format
    value_format: Format
    include_headers: bool
    batch_limits: BatchLimits = field(default_factory=BatchLimits)
    timeout_ms: Optional[int] = None

    def source(self) -> KafkaSource:
        tp = (self.rng.topic, self.rng.partition)
        return KafkaSource(
            self.bootstrap_servers, partitions=[tp],
            starting_offsets=OffsetsInitializer.offsets({tp: self.rng.start}, reset=None),
            stopping_offsets=OffsetsInitializer.offsets({tp: self.rng.stop}, reset=None),
            key_format=self.key_format, value_format=self.value_format,
            include_headers=self.include_headers, properties=self.properties,
            batch_limits=self.batch_limits)

    def __call__(self) -> Iterator[pa.Table]:
        if self.rng.size <= 0:
            return
        deadline = None if self.timeout_ms is None else time.monotonic() + self.timeout_ms / 1000
        rows = 0
        with self.source().open(parallelism=1) as stream:
            while True:
                wait = None if deadline is None else max(0.0, deadline - time.monotonic())
                batch = stream.poll(wait)
                if batch is not None:
                    rows += batch.num_rows
                    yield to_ray_block(batch, self.include_headers)
                elif stream.ended:
                    return
                elif deadline is not None and time.monotonic() >= deadline:
                    log.warning("read of %s[%d] offsets [%d, %d) stopped by timeout_ms=%d after %d "
                                "rows", self.rng.topic, self.rng.partition, self.rng.start,
                                self.rng.stop, self.timeout_ms, rows)
                    return


class KafkaDatasource(Datasource):
    """A Ray Data datasource for bounded Kafka reads (see the module docstring); use it with
    `ray.data.read_datasource`, or call `read_kafka`."""

    def __init__(self, topics: Union[str, Sequence[str]], bootstrap_servers: Union[str, Sequence[str]],
                 start_offset: OffsetArg = "earliest", end_offset: OffsetArg = "latest",
                 kafka_auth_config: Any = None, consumer_config: Optional[Mapping[str, Any]] = None,
                 timeout_ms: Optional[int] = None, *, key_format: FormatLike = Binary(),
                 value_format: FormatLike = Binary(), include_headers: bool = True,
                 max_records_per_split: Optional[int] = None, min_read_tasks: Optional[int] = None,
                 batch_limits: BatchLimits = BatchLimits(), request_timeout_s: float = 15.0) -> None:
        super().__init__()
        self.topics = [topics] if isinstance(topics, str) else list(topics or [])
        if not self.topics:
            raise ConfigError("topics cannot be empty")
        servers = [bootstrap_servers] if isinstance(bootstrap_servers, str) else list(bootstrap_servers or [])
        if not servers or any(not isinstance(s, str) or ":" not in s for s in servers):
            raise ConfigError(f"bootstrap_servers must be 'host:port' or a list of them, not "
                              f"{bootstrap_servers!r}")
        self.bootstrap_servers = ",".join(servers)
        _check_offsets("start_offset", start_offset, "latest")
        _check_offsets("end_offset", end_offset, "earliest")
        for kind in (int, datetime):
            if isinstance(start_offset, kind) and isinstance(end_offset, kind):
                first, last = ((start_offset, end_offset) if kind is int
                               else (_epoch_ms(start_offset), _epoch_ms(end_offset)))
                if first > last:
                    raise ConfigError(f"start_offset {start_offset} is after end_offset {end_offset}")
        if timeout_ms is not None and timeout_ms <= 0:
            raise ConfigError(f"timeout_ms must be positive, not {timeout_ms!r}")
        self.start_offset = start_offset
        self.end_offset = end_offset
        self.properties = client_properties(kafka_auth_config, consumer_config)
        self.timeout_ms = timeout_ms
        # Bound once here, in the driver: the read tasks carry the bound formats to the workers.
        self.key_format = as_format(key_format).bind(self.topics, True, timeout_ms or 60000)
        self.value_format = as_format(value_format).bind(self.topics, False, timeout_ms or 60000)
        for fmt in (self.key_format, self.value_format):
            if fmt.errors != "raise":
                raise ConfigError(f"{type(fmt).__name__}(errors={fmt.errors!r}) is not supported by "
                                  "read_kafka: a read task has no dead-letter output")
        self.include_headers = include_headers
        self.max_records_per_split = max_records_per_split
        self.min_read_tasks = min_read_tasks
        plan_ranges([], max_records_per_split, min_read_tasks)  # validates both now
        self.batch_limits = batch_limits
        self.request_timeout_s = request_timeout_s
        self._ranges: Optional[list[OffsetRange]] = None

    def get_name(self) -> str:
        return "FastsourceKafka"

    def estimate_inmemory_data_size(self) -> Optional[int]:
        return None

    def _admin(self) -> KafkaAdmin:
        read_committed = self.properties.get("isolation.level", "read_committed") == "read_committed"
        return KafkaAdmin(self.bootstrap_servers, self.properties, self.request_timeout_s, read_committed)

    def _spec(self, offsets: OffsetArg, tp: TopicPartitionKey, default: str) -> OffsetSpec:
        if isinstance(offsets, Mapping):
            return offsets.get(tp[0], {}).get(tp[1], default)
        return offsets

    def partition_ranges(self) -> list[OffsetRange]:
        """Every partition's `[start, end)`, resolved now (Ray's rules, see the module docstring)."""
        admin = self._admin()
        partitions = sorted(TopicListSubscriber(self.topics).partitions(admin))
        for name, offsets in (("start_offset", self.start_offset), ("end_offset", self.end_offset)):
            if isinstance(offsets, Mapping):
                for topic, wanted in offsets.items():
                    for p in wanted:
                        if (topic, p) not in partitions:
                            raise ConfigError(f"{name} names partition {p} of topic {topic!r}, which "
                                              "is not read (no such topic or partition)")
        earliest = admin.list_offsets(partitions, "earliest")
        latest = admin.list_offsets(partitions, "latest")
        specs = {tp: (self._spec(self.start_offset, tp, "earliest"),
                      self._spec(self.end_offset, tp, "latest")) for tp in partitions}
        by_time: dict[TopicPartitionKey, dict[int, int]] = {}
        for ms in sorted({_epoch_ms(s) for pair in specs.values() for s in pair if isinstance(s, datetime)}):
            wanted = [tp for tp, pair in specs.items() if any(isinstance(s, datetime) and _epoch_ms(s) == ms
                                                              for s in pair)]
            for tp, offset in admin.list_offsets(wanted, ms).items():
                by_time.setdefault(tp, {})[ms] = offset

        def resolve(spec: OffsetSpec, tp: TopicPartitionKey) -> int:
            if spec == "earliest":
                return earliest[tp]
            if spec == "latest":
                return latest[tp]
            if isinstance(spec, datetime):
                found = by_time[tp][_epoch_ms(spec)]
                return found if found >= 0 else latest[tp]
            return int(spec)

        ranges = []
        for tp in partitions:
            start, end = resolve(specs[tp][0], tp), min(resolve(specs[tp][1], tp), latest[tp])
            if start < earliest[tp]:
                log.warning("start_offset %d of %s[%d] is below the partition's first offset %d "
                            "(deleted by retention?): reading from %d", start, tp[0], tp[1],
                            earliest[tp], earliest[tp])
                start = earliest[tp]
            if start > end:
                raise ConfigError(f"start_offset {specs[tp][0]!r} (offset {start}) is after end_offset "
                                  f"{specs[tp][1]!r} (offset {end}) for {tp[0]}[{tp[1]}]")
            ranges.append(OffsetRange(tp[0], tp[1], start, end))
        return ranges

    def plan(self) -> list[OffsetRange]:
        """The ranges the read tasks read: partitions resolved at the first call, cut by
        `max_records_per_split` and `min_read_tasks`; ranges with nothing to read are left out (one is
        kept if all are empty). Later calls return the same ranges, so Ray's repeated planning and a
        re-executed dataset read the same rows."""
        if self._ranges is None:
            ranges = plan_ranges(self.partition_ranges(), self.max_records_per_split, self.min_read_tasks)
            self._ranges = [r for r in ranges if r.size > 0] or ranges[:1]
        return list(self._ranges)

    def get_read_tasks(self, parallelism: int, per_task_row_limit: Optional[int] = None,
                       data_context: Any = None) -> list[ReadTask]:
        """One read task per planned range. `parallelism` (Ray's hint) is not used: see the module
        docstring."""
        schema = block_schema(self.key_format, self.value_format, self.include_headers)
        tasks = []
        for rng in self.plan():
            read = RangeRead(self.bootstrap_servers, rng, self.properties, self.key_format,
                             self.value_format, self.include_headers, self.batch_limits, self.timeout_ms)
            metadata = BlockMetadata(num_rows=None, size_bytes=None, exec_stats=None,
                                     input_files=[f"kafka://{rng.topic}/{rng.partition}/{rng.start}-{rng.stop}"])
            tasks.append(ReadTask(read, metadata, schema=schema, per_task_row_limit=per_task_row_limit))
        return tasks


def read_kafka(topics: Union[str, list[str]], *, bootstrap_servers: Union[str, list[str]],
               trigger: Literal["once"] = "once", start_offset: OffsetArg = "earliest",
               end_offset: OffsetArg = "latest", kafka_auth_config: Any = None,
               consumer_config: Optional[dict[str, Any]] = None, num_cpus: Optional[float] = None,
               num_gpus: Optional[float] = None, memory: Optional[float] = None,
               override_num_blocks: Optional[int] = None, timeout_ms: Optional[int] = None,
               ray_remote_args: Optional[dict[str, Any]] = None,
               key_format: FormatLike = Binary(), value_format: FormatLike = Binary(),
               include_headers: bool = True, max_records_per_split: Optional[int] = None,
               batch_limits: BatchLimits = BatchLimits(), **remote_options: Any) -> Dataset:
    """A drop-in for `ray.data.read_kafka` (same arguments and meanings, the columns Ray declares)
    that reads with fastsource's compiled core; see the module docstring for every difference.

    fastsource's own options: `key_format`/`value_format` decode keys and values into Arrow columns,
    `include_headers=False` drops the headers column (faster), `max_records_per_split` cuts partitions
    into ranges of at most that many offsets, each a read task; `override_num_blocks` also asks for at
    least that many tasks (a hot partition is split). `remote_options` are Ray's other named remote
    arguments (`label_selector`, `resources`, `runtime_env`, ...), passed to `read_datasource`.
    """
    if trigger != "once":
        raise ConfigError(f"only trigger='once' (a bounded read) is supported, not {trigger!r}; for an "
                          "unbounded read use KafkaSource(...).open(runtime=fastsource.ray.RayRuntime())")
    datasource = KafkaDatasource(
        topics, bootstrap_servers, start_offset, end_offset, kafka_auth_config, consumer_config,
        timeout_ms, key_format=key_format, value_format=value_format, include_headers=include_headers,
        max_records_per_split=max_records_per_split, min_read_tasks=override_num_blocks,
        batch_limits=batch_limits)
    # Planned now, and as many output blocks asked for as there are tasks: left to itself, Ray would
    # guess 200 and cut every block into slices to get there (a cost, and no parallelism gained).
    tasks = len(datasource.plan())
    return ray.data.read_datasource(datasource, num_cpus=num_cpus, num_gpus=num_gpus, memory=memory,
                                    override_num_blocks=override_num_blocks or tasks,
                                    ray_remote_args=ray_remote_args, **remote_options)
