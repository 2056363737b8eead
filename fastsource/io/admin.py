"""Metadata and offset look-ups for the enumerator, through confluent-kafka's admin client.

This is control-plane traffic (a few requests per discovery), so it uses confluent-kafka's Python API,
which runs on the same librdkafka as the compiled fetch path.
"""
from __future__ import annotations

import time
from typing import Callable, Iterable, Iterator, Mapping, Optional, TypeVar, Union

from confluent_kafka import (ConsumerGroupTopicPartitions, IsolationLevel, KafkaError,
                             KafkaException, TopicPartition)
from confluent_kafka.admin import AdminClient, OffsetSpec

from fastsource.errors import BrokerUnavailableError, ConfigError, KafkaFetchError

TopicPartitionKey = tuple[str, int]
OffsetQuery = Union[str, int]  # "earliest", "latest" or a timestamp in ms
OFFSET_INVALID = -1001
T = TypeVar("T")

# Client defaults of every librdkafka handle fastsource creates (the user's properties win).
# librdkafka drops its bootstrap connection once it has learned the brokers' ids, and the request
# in flight on it waits out a "sparse connect" pause of reconnect.backoff.ms / 2 (50 ms by default)
# before it is sent again: measured 54 ms -> 13 ms for a first metadata request on loopback.
CONNECT_DEFAULTS = {"reconnect.backoff.ms": "10"}

# Broker answers that Kafka's protocol defines as transient (a topic created a moment ago, a leader
# or coordinator moving). confluent-kafka raises per-partition and per-group errors without
# librdkafka's retriable flag, so the flag alone would never allow a retry.
_TRANSIENT_CODES = frozenset({
    KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.REQUEST_TIMED_OUT, KafkaError.NETWORK_EXCEPTION,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS, KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError.NOT_COORDINATOR, KafkaError.NOT_ENOUGH_REPLICAS, KafkaError.KAFKA_STORAGE_ERROR,
    KafkaError.FENCED_LEADER_EPOCH, KafkaError.UNKNOWN_LEADER_EPOCH, KafkaError.OFFSET_NOT_AVAILABLE,
})

# Client properties meaningful to an admin client; the rest (fetch sizes, ...) belong to consumers.
_ADMIN_PREFIXES = ("bootstrap.servers", "security.", "sasl.", "ssl.", "client.id", "socket.",
                   "broker.address.family", "metadata.", "topic.metadata.", "reconnect.",
                   "retry.", "debug", "log_level")


class KafkaAdmin:
    """Topic metadata, offsets by spec and committed group offsets, with bounded waits."""

    def __init__(self, bootstrap_servers: str, properties: Mapping[str, str] | None = None,
                 timeout_s: float = 15.0, read_committed: bool = False) -> None:
        config = dict(CONNECT_DEFAULTS)
        config.update((k, v) for k, v in (properties or {}).items() if k.startswith(_ADMIN_PREFIXES))
        config["bootstrap.servers"] = bootstrap_servers
        config.setdefault("log_level", 0)
        try:
            self._client = AdminClient(config)
        except KafkaException as exc:
            raise ConfigError(f"invalid Kafka client properties: {exc}") from exc
        self.bootstrap_servers = bootstrap_servers
        self.timeout_s = timeout_s
        self._isolation = (IsolationLevel.READ_COMMITTED if read_committed
                           else IsolationLevel.READ_UNCOMMITTED)

    def _unreachable(self, exc: Exception) -> BrokerUnavailableError:
        return BrokerUnavailableError(f"no Kafka broker answered at {self.bootstrap_servers} within "
                                      f"{self.timeout_s:g} s ({exc})")

    def cluster_id(self) -> Optional[str]:
        """The cluster's id from its metadata (None when the broker does not say): what a
        checkpoint records to know which cluster it belongs to."""
        try:
            return self._client.list_topics(timeout=self.timeout_s).cluster_id or None
        except KafkaException as exc:
            raise self._unreachable(exc) from exc

    def topics(self, wanted: Callable[[str], bool] = lambda name: True) -> dict[str, int]:
        """Every topic (internal ones excluded) with its partition count.

        A `wanted` topic still electing its leaders (a retriable error in its metadata) is asked for
        again until `timeout_s`, so that a topic created a moment ago is not reported missing.
        """
        pauses = self._pauses()
        while True:
            try:
                metadata = self._client.list_topics(timeout=self.timeout_s)
            except KafkaException as exc:
                raise self._unreachable(exc) from exc
            settling = any(t.error is not None and _transient(t.error) and wanted(name)
                           and not name.startswith("__") for name, t in metadata.topics.items())
            pause = next(pauses, None) if settling else None
            if pause is None:
                return {name: len(t.partitions) for name, t in metadata.topics.items()
                        if t.error is None and not name.startswith("__")}
            time.sleep(pause)

    def list_offsets(self, partitions: Iterable[TopicPartitionKey],
                     query: OffsetQuery) -> dict[TopicPartitionKey, int]:
        """Offsets of `partitions` for "earliest", "latest" or the first record with timestamp >= ms.

        A timestamp past the last record maps to -1, as Kafka answers it.
        """
        partitions = list(partitions)
        if not partitions:
            return {}
        if query == "earliest":
            spec = OffsetSpec.earliest()
        elif query == "latest":
            spec = OffsetSpec.latest()
        else:
            spec = OffsetSpec.for_timestamp(int(query))
        request = {TopicPartition(t, p): spec for t, p in partitions}

        def ask() -> dict[TopicPartitionKey, int]:
            futures = self._client.list_offsets(request, isolation_level=self._isolation,
                                                request_timeout=self.timeout_s)
            return {(tp.topic, tp.partition): f.result().offset for tp, f in futures.items()}

        return self._retrying(ask, "list offsets")

    def committed(self, group_id: str,
                  partitions: Iterable[TopicPartitionKey]) -> dict[TopicPartitionKey, int | None]:
        """The group's committed offsets; None where the group has none."""
        partitions = list(partitions)
        if not partitions:
            return {}
        request = [ConsumerGroupTopicPartitions(group_id, [TopicPartition(t, p) for t, p in partitions])]

        def ask() -> ConsumerGroupTopicPartitions:
            futures = self._client.list_consumer_group_offsets(request, request_timeout=self.timeout_s)
            return futures[group_id].result()

        result = self._retrying(ask, f"read committed offsets of group {group_id!r}")
        return {(tp.topic, tp.partition): (tp.offset if tp.offset >= 0 else None)
                for tp in result.topic_partitions}

    def _retrying(self, request: Callable[[], T], what: str) -> T:
        """Run `request`, repeating it on retriable broker errors until `timeout_s` has passed.

        A topic created a moment ago answers NOT_LEADER_FOR_PARTITION or LEADER_NOT_AVAILABLE until
        its leaders are elected; a reader started right after creating a topic must not fail on that.
        """
        pauses = self._pauses()
        while True:
            try:
                return request()
            except KafkaException as exc:
                error = self._kafka_error(exc)
                retriable = error is not None and _transient(error) and not self._is_unreachable(exc)
                pause = next(pauses, None) if retriable else None
                if pause is None:
                    raise self._offsets_error(exc, what) from exc
            time.sleep(pause)

    def _pauses(self) -> Iterator[float]:
        """Back-off pauses (20 ms, doubling up to 0.5 s) for as long as they fit in `timeout_s`."""
        deadline = time.monotonic() + self.timeout_s
        pause = 0.02
        while time.monotonic() + pause <= deadline:
            yield pause
            pause = min(pause * 2, 0.5)

    @staticmethod
    def _kafka_error(exc: KafkaException) -> KafkaError | None:
        error = exc.args[0] if exc.args else None
        return error if isinstance(error, KafkaError) else None

    def _error_name(self, exc: KafkaException) -> str:
        error = self._kafka_error(exc)
        return error.name() if error is not None else str(exc)

    def _is_unreachable(self, exc: KafkaException) -> bool:
        return self._error_name(exc) in ("_TRANSPORT", "_TIMED_OUT", "_ALL_BROKERS_DOWN")

    def _offsets_error(self, exc: KafkaException, what: str) -> Exception:
        if self._is_unreachable(exc):
            return self._unreachable(exc)
        return KafkaFetchError(f"could not {what} on {self.bootstrap_servers}: {exc}",
                               name=self._error_name(exc))


def _transient(error: KafkaError) -> bool:
    """Whether asking again may succeed: librdkafka says so, or the code is transient by protocol."""
    return error.retriable() or error.code() in _TRANSIENT_CODES
