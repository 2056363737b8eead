"""The Kafka split reader: one compiled librdkafka consumer fetching every split of one reader."""
from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Optional

import pyarrow as pa

from fastsource import _core
from fastsource.io.admin import CONNECT_DEFAULTS, BrokerHealth, KafkaAdmin
from fastsource.errors import (AuthenticationError, ConfigError, FastsourceError, KafkaFetchError,
                               OffsetOutOfRangeError, RecordTooLargeError)
from fastsource.split import KafkaPartitionSplit

log = logging.getLogger(__name__)

ERR_OFFSET_OUT_OF_RANGE = (1, -140)       # OFFSET_OUT_OF_RANGE, _AUTO_OFFSET_RESET
ERR_MSG_SIZE_TOO_LARGE = 10
ERR_ALL_BROKERS_DOWN = -187
ERR_AUTHENTICATION = -169


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
        if self.max_rows < 1 or self.max_bytes < 1 or self.max_wait_ms < 0:
            raise ConfigError(f"invalid batch limits {self}")
        if self.max_bytes >= 1 << 31:
            raise ConfigError("max_bytes must stay below 2 GiB (binary columns use 32-bit offsets)")


@dataclass
class RecordsWithSplitIds:
    """One fetch: a batch of raw records (or None), how far each split got, and finished splits."""

    batch: Optional[pa.RecordBatch]
    progress: list[tuple[str, int, int, int, int]] = field(default_factory=list)
    finished_splits: list[str] = field(default_factory=list)

    def is_empty(self) -> bool:
        return self.batch is None and not self.finished_splits


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
    """Fetches records of its splits as Arrow batches; `wake_up()` interrupts a blocking fetch."""

    def __init__(self, config: Mapping[str, str], include_headers: bool = False,
                 limits: BatchLimits = BatchLimits(), broker_timeout_ms: int = 60000,
                 health: Optional[BrokerHealth] = None) -> None:
        self._config = dict(config)
        self._bootstrap = config.get("bootstrap.servers", "?")
        self._limits = limits
        self._health = health if health is not None else BrokerHealth(self._bootstrap,
                                                                       broker_timeout_ms)
        self._down = False
        # (topic, partition, next offset) of every split being fetched, to name them all when
        # records turn out to be gone.
        self._positions: dict[str, tuple[str, int, int]] = {}
        try:
            self._consumer = _core.Consumer(dict(config), include_headers, broker_timeout_ms)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc

    @staticmethod
    def raw_schema(include_headers: bool) -> pa.Schema:
        """Schema of fetched batches, before the emitter decodes keys and values."""
        return _core.raw_schema(include_headers)

    def fetch(self) -> RecordsWithSplitIds:
        try:
            batch, progress, finished = self._consumer.fetch(
                self._limits.max_rows, self._limits.max_bytes, self._limits.max_wait_ms)
        except _core.FetchError as exc:
            if exc.code != ERR_AUTHENTICATION:
                self._report_health()
            raise self._translate(exc) from exc
        self._report_health()
        for split_id, next_offset, _, _, _ in progress:
            topic, partition, _ = self._positions[split_id]
            self._positions[split_id] = (topic, partition, next_offset)
        for split_id in finished:
            self._positions.pop(split_id, None)
        if self._consumer.gone_splits:
            log.warning("split(s) end because their topic or partition was deleted: %s",
                        ", ".join(self._consumer.gone_splits))
            self._consumer.gone_splits.clear()
        return RecordsWithSplitIds(batch, progress, finished)

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

    def _translate(self, exc: "_core.FetchError") -> Exception:
        coordinates = dict(code=exc.code, name=exc.name, topic=exc.topic, partition=exc.partition,
                           offset=exc.offset)
        if exc.code in ERR_OFFSET_OUT_OF_RANGE:
            return self._out_of_range(exc, coordinates)
        if exc.code == ERR_AUTHENTICATION:
            return AuthenticationError(
                f"the Kafka client could not authenticate to {self._bootstrap} (check "
                f"security.protocol and the sasl./ssl. properties): {exc.reason}")
        if exc.code == ERR_MSG_SIZE_TOO_LARGE:
            where = (f"of {exc.topic}[{exc.partition}] at offset {exc.offset}" if exc.topic is not None
                     else "of one of this reader's splits")
            return RecordTooLargeError(
                f"a record batch {where} is larger than the fetch limits ({exc.reason}); raise "
                "receive.message.max.bytes (and fetch.max.bytes) to read it", **coordinates)
        if exc.code == ERR_ALL_BROKERS_DOWN:
            since = self._consumer.broker_down_since()
            silent = time.monotonic() - since if since is not None else self._health.down_for()
            return self._health.error(silent)
        return KafkaFetchError(f"fetch failed: {exc}", **coordinates)

    def _out_of_range(self, exc: "_core.FetchError", coordinates: dict) -> OffsetOutOfRangeError:
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
            lost = {reported: exc.offset}
            where = (f"{exc.topic}[{exc.partition}] at offset {exc.offset} (its current range could "
                     f"not be looked up: {lookup})")
        return OffsetOutOfRangeError(
            f"data loss: records are gone (deleted by retention, or the offset is past the end) "
            f"in {len(lost)} partition(s): {where} ({exc.name}: {exc.reason}); set the Kafka "
            "property auto.offset.reset=earliest|latest to skip to a valid offset instead",
            **coordinates)

    def add_splits(self, splits: Iterable[KafkaPartitionSplit]) -> None:
        for split in splits:
            stop = -1 if split.stopping_offset is None else split.stopping_offset
            self._consumer.add_split(split.split_id, split.topic, split.partition,
                                     split.starting_offset, stop)
            self._positions[split.split_id] = (split.topic, split.partition, split.starting_offset)

    def remove_splits(self, split_ids: Iterable[str]) -> None:
        split_ids = list(split_ids)
        self._consumer.remove_splits(split_ids)
        for split_id in split_ids:
            self._positions.pop(split_id, None)

    def pause_or_resume_splits(self, pause: Iterable[str], resume: Iterable[str]) -> None:
        self._consumer.pause_or_resume(list(pause), list(resume))

    def commit(self, offsets: list[tuple[str, int, int]]) -> None:
        """Asynchronous commit of `(topic, partition, next_offset)`; results show up in `stats()`."""
        self._consumer.commit(offsets, True)

    def stats(self) -> dict:
        return self._consumer.stats()

    def high_watermarks(self, partitions: list[tuple[str, int]]) -> list[int]:
        return self._consumer.high_watermarks(partitions)

    def wake_up(self) -> None:
        self._consumer.wake_up()

    def close(self) -> None:
        self._consumer.close()
