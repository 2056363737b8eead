"""The Kafka split reader: one compiled librdkafka consumer fetching every split of one reader."""
from __future__ import annotations

import collections
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Iterable, Iterator, Mapping, Optional

import pyarrow as pa

from fastsource.errors import (AuthenticationError, BrokerUnavailableError, ConfigError, CoreError,
                               FastsourceError, KafkaFetchError, OffsetOutOfRangeError, RecordTooLargeError,
                               error_from_code, kind_of)
from fastsource.kafka import _consumer
from fastsource.kafka.admin import CONNECT_DEFAULTS, BrokerHealth, KafkaAdmin, security_hint
from fastsource.base.reader.split_reader import RecordsWithSplitIds
from fastsource.kafka.split import KafkaPartitionSplit
from fastsource.validation import check_int

log = logging.getLogger(__name__)

def map_core_error(exc: Exception, bootstrap: str) -> FastsourceError:
    """The one place where the compiled consumer's errors become fastsource errors: the error table
    (`fastsource.errors.ERROR_TABLE`) decides the class and whether the error is retriable and
    fatal; this gives it its words, named by what and where (data loss, oversize records,
    authentication, lost brokers, invalid properties, other fetch errors). A split reader adds what
    only it knows: every partition that lost data, and how long the cluster has been silent."""
    if isinstance(exc, FastsourceError):
        return exc
    if isinstance(exc, ValueError):
        return ConfigError(str(exc))
    if not isinstance(exc, CoreError):
        return KafkaFetchError(f"the consumer of {bootstrap} failed: {exc}")
    kind = kind_of(exc.code)
    if kind.error is OffsetOutOfRangeError:
        message = (f"data loss: offset {exc.offset} of {exc.topic}[{exc.partition}] is out of range "
                   f"(deleted by retention, or past the end) ({exc.name}: {exc.reason}); set the "
                   "Kafka property auto.offset.reset=earliest|latest to skip to a valid offset instead")
    elif kind.error is AuthenticationError:
        message = (f"the Kafka client could not authenticate to {bootstrap} (check security.protocol "
                   f"and the sasl./ssl. properties): {exc.reason}{security_hint(exc.reason or '')}")
    elif kind.error is RecordTooLargeError:
        message = _too_large(exc)
    elif kind.error is BrokerUnavailableError:
        message = f"lost every broker of {bootstrap} for broker_timeout_ms: {exc.reason}"
    elif exc.name == "FS_OUT_OF_MEMORY":
        message = f"out of memory while building a batch of records fetched from {bootstrap}{exc.where()}"
    else:
        message = f"fetch from {bootstrap} failed: {exc}"
    return error_from_code(exc.code, message, name=exc.name, topic=exc.topic, partition=exc.partition,
                           offset=exc.offset)


def _too_large(exc: CoreError) -> str:
    """What a record too large for a batch is, and where (the splits it may be in when librdkafka
    does not say which)."""
    if exc.name == "FS_COLUMN_TOO_LARGE":
        return (f"a column of one batch{exc.where()} would exceed Arrow's 2 GiB of 32-bit offsets; "
                "lower max_bytes of the batch limits")
    if exc.topic is not None:
        where = f"of {exc.topic}[{exc.partition}] at offset {exc.offset}"
    elif exc.candidates:
        where = ("of one of this reader's splits: the next one of "
                 + ", ".join(f"{t}[{p}] at offset {o}" for t, p, o in exc.candidates))
    else:
        where = "of one of this reader's splits"
    return (f"a record batch {where} is larger than the fetch limits ({exc.reason}); raise "
            "receive.message.max.bytes (and fetch.max.bytes) to read it")


@dataclass(frozen=True)
class BatchLimits:
    """How big a fetched batch may grow: whichever limit is reached first ends it.

    The defaults favour throughput (large batches amortize the per-batch Python work) while bounding
    memory: with the elements queue's capacity of 2, a reader holds at most about four batches
    (two queued, one being fetched, one being emitted).
    """

    max_rows: int = 65536
    max_bytes: int = 16 << 20
    max_wait_ms: int = 100

    def __post_init__(self) -> None:
        for name in ("max_rows", "max_bytes", "max_wait_ms"):
            check_int(name, getattr(self, name))
        if self.max_rows < 1 or self.max_bytes < 1 or self.max_wait_ms < 0:
            raise ConfigError(f"invalid batch limits {self}")
        if self.max_bytes >= 1 << 31:
            raise ConfigError("max_bytes must stay below 2 GiB (binary columns use 32-bit offsets)")


def consumer_config(bootstrap_servers: str, group_id: Optional[str],
                    properties: Mapping[str, str]) -> dict[str, str]:
    """librdkafka properties of a reader's consumer: the user's, over fastsource's defaults.

    Offsets are managed by fastsource (no auto commit, no stored offsets); a missing offset is an
    error unless the user sets `auto.offset.reset`; end-of-partition events finish bounded splits.
    The fetch-queue defaults below are the ones the benchmark baselines use too.
    """
    config = {
        "enable.auto.commit": "false",
        "enable.auto.offset.store": "false",
        "auto.offset.reset": "error",
        "queued.min.messages": "200000",
        "fetch.wait.max.ms": "100",
        # librdkafka postpones a partition's next fetch by this much when its local queue is full
        # (default 1 s): a reader whose decoding is slower than fetching then stalls for a second
        # each time it has drained the queue. Measured: JSON reads 0.65 -> 1.35 M records/s.
        "fetch.queue.backoff.ms": "10",
        # Smaller fetch responses than librdkafka's 1 MiB per partition: measured on loopback with
        # 4 partitions, 100-byte records 2.7 -> 3.6 M/s, 1 KB records 1.45 -> 1.56 M/s.
        "max.partition.fetch.bytes": "524288",
        **CONNECT_DEFAULTS,
    }
    config.update({k: str(v) for k, v in properties.items()})
    config["bootstrap.servers"] = bootstrap_servers
    config["group.id"] = group_id or f"fastsource-{uuid.uuid4()}"
    config["enable.partition.eof"] = "true"
    return config


class KafkaPartitionSplitReader:
    """Fetches records of its splits as Arrow batches; `wake_up()` interrupts a blocking fetch.

    The consumer assigns a partition once, so offset ranges of one partition are read one after
    another: a range waits here until the previous range of its partition finished. Every error of
    the core leaves through `map_core_error`.
    """

    def __init__(self, config: Mapping[str, str], include_headers: bool = False,
                 limits: BatchLimits = BatchLimits(), broker_timeout_ms: int = 60000,
                 health: Optional[BrokerHealth] = None, include_key: bool = True,
                 include_value: bool = True) -> None:
        self._config = dict(config)
        self._bootstrap = config.get("bootstrap.servers", "?")
        self._limits = limits
        self._reading: dict[tuple[str, int], str] = {}
        self._waiting: dict[tuple[str, int], collections.deque[KafkaPartitionSplit]] = {}
        self._partition_of: dict[str, tuple[str, int]] = {}
        self._last_commit: Optional[list[tuple[str, int, int]]] = None
        self._async_commits = 0
        self._health = health if health is not None else BrokerHealth(self._bootstrap,
                                                                       broker_timeout_ms)
        self._down = False
        # (topic, partition, next offset) of every split being fetched, to name them all when
        # records turn out to be gone.
        self._positions: dict[str, tuple[str, int, int]] = {}
        with self._mapped():
            self._consumer = _consumer.Consumer(dict(config), include_headers, broker_timeout_ms,
                                            include_key, include_value)

    @contextlib.contextmanager
    def _mapped(self) -> Iterator[None]:
        try:
            yield
        except (CoreError, ValueError, RuntimeError) as exc:
            error = map_core_error(exc, self._bootstrap)
            if isinstance(error, OffsetOutOfRangeError):
                error = self._out_of_range(exc, error)
            elif isinstance(error, BrokerUnavailableError) and hasattr(self, "_consumer"):
                since = self._consumer.broker_down_since()
                error = self._health.error(time.monotonic() - since if since is not None
                                           else self._health.down_for())
            raise error from exc

    @staticmethod
    def raw_schema(include_headers: bool) -> pa.Schema:
        """Schema of fetched batches, before the emitter decodes keys and values."""
        return _consumer.raw_schema(include_headers)

    def fetch(self) -> RecordsWithSplitIds:
        try:
            with self._mapped():
                batch, progress, finished = self._consumer.fetch(
                    self._limits.max_rows, self._limits.max_bytes, self._limits.max_wait_ms)
        except AuthenticationError:
            raise
        except FastsourceError:
            self._report_health()
            raise
        self._report_health()
        for split_id, next_offset, _, _, _ in progress:
            topic, partition, _ = self._positions[split_id]
            self._positions[split_id] = (topic, partition, next_offset)
        for split_id in finished:
            self._positions.pop(split_id, None)
        self._start(self._next_ranges(finished))
        return RecordsWithSplitIds(batch, progress, finished)

    def _next_ranges(self, ended: Iterable[str]) -> list[KafkaPartitionSplit]:
        """The splits ended: the next waiting range (if any) of each of their partitions."""
        following = []
        for split_id in ended:
            tp = self._partition_of.pop(split_id, None)
            if tp is None or self._reading.get(tp) != split_id:
                continue
            del self._reading[tp]
            waiting = self._waiting.get(tp)
            if waiting:
                following.append(waiting.popleft())
                if not waiting:
                    del self._waiting[tp]
        return following

    def _report_health(self) -> None:
        """Tell the stream's broker health when this consumer loses or regains the cluster."""
        since = self._consumer.broker_down_since()
        if since is not None and self._health.answered_since(since):
            self._consumer.clear_broker_down()
            since = None
        if since is not None and not self._down:
            self._down = True
            self._health.down(since)
        elif since is None and self._down:
            self._down = False
            self._health.up()

    def _out_of_range(self, exc: CoreError, mapped: OffsetOutOfRangeError) -> FastsourceError:
        """One error naming every split of this reader whose next record is gone, with the offset
        its partition now starts at (looked up with an admin client: the consumer belongs to the
        fetch thread). The look-up failing leaves the error naming the partition the core reported."""
        reported = (exc.topic, exc.partition)
        try:
            admin = KafkaAdmin(self._bootstrap, self._config)
            keys = [(t, p) for t, p, _ in self._positions.values()]
            earliest = admin.list_offsets(keys, "earliest")
            latest = admin.list_offsets(keys, "latest")
            lost = {(t, p): o for t, p, o in self._positions.values()
                    if (t, p) == reported or not earliest[(t, p)] <= o <= latest[(t, p)]}
            where = "; ".join(f"{t}[{p}] at offset {o} (the partition now starts at offset "
                              f"{earliest[(t, p)]} and ends at {latest[(t, p)]})"
                              for (t, p), o in sorted(lost.items()))
        except FastsourceError as lookup:
            log.warning("the current ranges of the partitions that lost data could not be looked "
                        "up: %s", lookup)
            return mapped
        return error_from_code(
            exc.code, f"data loss: records are gone (deleted by retention, or the offset is past the end) "
            f"in {len(lost)} partition(s): {where} ({exc.name}: {exc.reason}); set the Kafka "
            "property auto.offset.reset=earliest|latest to skip to a valid offset instead",
            name=exc.name, topic=exc.topic, partition=exc.partition, offset=exc.offset)

    def add_splits(self, splits: Iterable[KafkaPartitionSplit]) -> None:
        """Start each split now, or once the range before it in its partition finished. The splits
        that start now are added to the consumer's assignment in one step."""
        starting = []
        for split in sorted(splits, key=lambda s: (s.topic_partition, s.starting_offset)):
            tp = split.topic_partition
            self._partition_of[split.split_id] = tp
            if tp in self._reading:
                self._waiting.setdefault(tp, collections.deque()).append(split)
            else:
                self._reading[tp] = split.split_id
                starting.append(split)
        self._start(starting)

    def _start(self, splits: list[KafkaPartitionSplit]) -> None:
        if not splits:
            return
        for split in splits:
            self._reading[split.topic_partition] = split.split_id
        with self._mapped():
            self._consumer.add_splits([
                (s.split_id, s.topic, s.partition, s.starting_offset,
                 -1 if s.stopping_offset is None else s.stopping_offset) for s in splits])
        for split in splits:
            self._positions[split.split_id] = (split.topic, split.partition, split.starting_offset)

    def remove_splits(self, split_ids: Iterable[str]) -> None:
        removed = set(split_ids)
        for tp, waiting in list(self._waiting.items()):
            self._waiting[tp] = collections.deque(s for s in waiting if s.split_id not in removed)
        with self._mapped():
            self._consumer.remove_splits(list(removed))
        for split_id in removed:
            self._positions.pop(split_id, None)
        self._start(self._next_ranges(removed))

    def pause_or_resume_splits(self, pause: Iterable[str], resume: Iterable[str]) -> None:
        with self._mapped():
            self._consumer.pause_or_resume(list(pause), list(resume))

    def commit(self, offsets: list[tuple[str, int, int]], asynchronous: bool = True) -> None:
        """Commit `(topic, partition, next_offset)`; results of asynchronous commits show up in
        `observe()`."""
        with self._mapped():
            self._consumer.commit(offsets, asynchronous)
        self._last_commit = offsets if asynchronous else None
        self._async_commits += 1 if asynchronous else 0

    def observe(self) -> dict:
        """The high watermarks of the partitions being read and the commit counters, as the
        consumer last saw them (no request is sent)."""
        partitions = list(self._reading)
        highs = self._consumer.high_watermarks(partitions)
        return {"high_watermarks": dict(zip(partitions, highs)), "stats": self._consumer.stats()}

    def wake_up(self) -> None:
        self._consumer.wake_up()

    def close(self) -> None:
        """Flush: when an asynchronous commit has no answer yet, its offsets are committed again,
        synchronously, before the consumer closes."""
        stats = self._consumer.stats()
        answered = stats.get("commits_succeeded", 0) + stats.get("commits_failed", 0)
        if self._last_commit and answered < self._async_commits:
            try:
                self.commit(self._last_commit, asynchronous=False)
            except FastsourceError as exc:
                log.warning("offsets %s could not be committed before closing: %s", self._last_commit, exc)
        self._consumer.close()
