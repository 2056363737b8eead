"""Metadata and offset look-ups for the enumerator, through confluent-kafka's admin client.

This is control-plane traffic (a few requests per discovery), so it uses confluent-kafka's Python API,
which runs on the same librdkafka as the compiled fetch path.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Iterable, Iterator, Mapping, Optional, TypeVar, Union

from confluent_kafka import (ConsumerGroupTopicPartitions, IsolationLevel, KafkaError,
                             KafkaException, TopicCollection, TopicPartition)
from confluent_kafka.admin import AdminClient, OffsetSpec

from fastsource.errors import (CODES, AuthenticationError, BrokerUnavailableError, ConfigError,
                               FastsourceError, authentication_failure, error_from_code, kind_of)
from fastsource.kafka.tls_probe import certificate_problem, speaks_tls

log = logging.getLogger(__name__)

TopicPartitionKey = tuple[str, int]
OffsetQuery = Union[str, int]  # "earliest", "latest" or a timestamp in ms
OFFSET_INVALID = -1001
T = TypeVar("T")

# Client defaults of every librdkafka handle fastsource creates (the user's properties win).
# librdkafka drops its bootstrap connection once it has learned the brokers' ids, and the request
# in flight on it waits out a "sparse connect" pause of reconnect.backoff.ms / 2 (50 ms by default)
# before it is sent again: measured 54 ms -> 13 ms for a first metadata request on loopback.
# The backoff doubles after each failed attempt, capped at 1 s (librdkafka: 10 s), so a returning
# broker is noticed within a second. Sparse connections are off: with them, librdkafka connects to a
# broker when a request needs it, after only that reconnect.backoff.ms / 2 pause, not the growing
# backoff, and by default re-bootstraps (new broker threads) each time every broker is down: during an
# outage each client then tried ~80 connections a second (strace: 790 connect() calls in 5 s for one
# reader and its enumerator's admin client; 10 without sparse connections). The cost: a client keeps a
# connection to every broker of the cluster, not only to the ones it reads from (set
# enable.sparse.connections=true for clusters of very many brokers).
CONNECT_DEFAULTS = {"reconnect.backoff.ms": "10", "reconnect.backoff.max.ms": "1000",
                    "enable.sparse.connections": "false"}

# librdkafka's reasons for a failed connection that no waiting mends (unlike silence, which may be a
# broker still starting behind a filter): said in a few words of what the user can check.
_CONNECT_CAUSES = (("Connection refused", "connection refused (nothing listens on that port: is the "
                                          "broker running, and is that its address?)"),
                   ("Failed to resolve", "the host name does not resolve"),
                   ("Invalid response size", "what answers there does not speak the Kafka protocol "
                                             "(is that the broker's Kafka listener port?)"),
                   ("Network is unreachable", "the network is unreachable"),
                   ("No route to host", "there is no route to that host"))


def connect_cause(reason: str) -> str:
    """librdkafka's reason for a failed connection (`host:port/bootstrap: Connect to ... failed:
    Connection refused (after 0ms in state CONNECT)`) in a few plain words."""
    for needle, cause in _CONNECT_CAUSES:
        if needle in reason:
            return cause
    reason = reason.split(": ", 1)[-1]
    return reason.split(" (after ", 1)[0]


def bootstrap_addresses(bootstrap_servers: str) -> list[str]:
    """The host:port entries of a bootstrap string, without a security protocol prefix, as
    librdkafka names them in its errors."""
    return [entry.strip().rsplit("://", 1)[-1] for entry in bootstrap_servers.split(",") if entry.strip()]
_CLIENT_CERT_ALERTS = ("alert bad certificate", "alert certificate required", "alert unknown ca",
                       "alert certificate unknown")


def security_hint(reason: str) -> str:
    """What to check, for the failures whose librdkafka reason does not say it ('' otherwise)."""
    if any(alert in reason for alert in _CLIENT_CERT_ALERTS):
        return (" (the broker did not accept the client certificate: check ssl.certificate.location "
                "and ssl.key.location, and that the broker trusts the CA that signed it)")
    return ""


class Clock:
    """Monotonic time and pauses, as the admin client and the broker health take them: tests give
    a fake one whose `sleep` moves its time on, so that waits need no real sleeping."""

    def now(self) -> float:
        """Seconds on a monotonic clock."""
        return time.monotonic()

    def sleep(self, seconds: float, wake: Optional[threading.Event] = None) -> None:
        """Pause `seconds`, or until `wake` is set (at once if it is set already)."""
        if wake is None:
            time.sleep(seconds)
        else:
            wake.wait(seconds)


SYSTEM_CLOCK = Clock()


class BrokerHealth:
    """Whether the cluster answers, as every client of one stream sees it: one warning when it stops
    answering and one when it answers again, and the totals that `SourceStream.metrics()` reports.

    Clients report what they observe (`down(since)`, `up()`) from any thread. A report of silence
    that began more than `STALE_S` before the last answer is stale (a late event) and is ignored;
    within it, the answer may have been the cluster's last before going away (a stopping broker still
    answers for a moment after a consumer lost it), so the report counts.

    A health does not carry its state when it travels (pickled into a Ray actor with a reader's
    spec): the copy starts with no counts and is `reporting`, it keeps each outage its clients saw
    begin and end, which `take_reports()` hands over and the stream's own health `apply_reports()`,
    so that the stream's counts include what remote readers saw.
    """

    STALE_S = 2.0

    def __init__(self, bootstrap_servers: str, broker_timeout_ms: int = 60000,
                 clock: Clock = SYSTEM_CLOCK, reporting: bool = False) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.broker_timeout_ms = broker_timeout_ms
        self._clock = clock
        self.reporting = reporting
        self._reports: list[tuple[str, float]] = []  # ("down" | "up", when), while reporting
        self._lock = threading.Lock()
        self._down_since: Optional[float] = None
        self._last_answer = float("-inf")
        self._down_total_s = 0.0
        self.outages = 0

    def __reduce__(self) -> tuple:
        """What travels is the settings, never the counts: the copy starts with none, on the system
        clock, and is `reporting` (see the class docstring)."""
        return (BrokerHealth, (self.bootstrap_servers, self.broker_timeout_ms, SYSTEM_CLOCK, True))

    def take_reports(self) -> list[tuple[str, float]]:
        """The outages' starts and ends seen since the last call, as ("down" | "up", seconds ago):
        ages, because another process's monotonic clock is not this one's."""
        now = self._clock.now()
        with self._lock:
            reports, self._reports = self._reports, []
        return [(kind, now - at) for kind, at in reports]

    def apply_reports(self, reports: list[tuple[str, float]]) -> None:
        """Count what another health's clients saw (its `take_reports()`), as if they were ours."""
        now = self._clock.now()
        for kind, age in reports:
            if kind == "down":
                self.down(now - age)
            else:
                self.up(now - age)

    def down(self, since: float) -> None:
        """A client has had no answer since monotonic time `since`."""
        with self._lock:
            if self._down_since is not None or since < self._last_answer - self.STALE_S:
                return
            self._down_since = since
            self.outages += 1
            if self.reporting:
                self._reports.append(("down", since))
        log.warning("no Kafka broker answers at %s; waiting up to %g s (broker_timeout_ms) for one "
                    "to come back", self.bootstrap_servers, self.broker_timeout_ms / 1000)

    def up(self, at: Optional[float] = None) -> None:
        """A client got an answer (now, or at monotonic time `at`)."""
        now = self._clock.now() if at is None else at
        with self._lock:
            self._last_answer = max(self._last_answer, now)
            if self._down_since is None:
                return
            lasted = max(0.0, now - self._down_since)
            self._down_total_s += lasted
            self._down_since = None
            if self.reporting:
                self._reports.append(("up", now))
        log.warning("Kafka broker at %s answers again after %.1f s", self.bootstrap_servers, lasted)

    def answered_since(self, since: float) -> bool:
        """Whether some client got an answer after monotonic time `since`."""
        return self._last_answer > since + self.STALE_S

    def down_for(self) -> float:
        """Seconds of the current outage (0 while the cluster answers)."""
        since = self._down_since
        return 0.0 if since is None else max(0.0, self._clock.now() - since)

    def down_s(self) -> float:
        """Seconds without an answer over the stream's life, the current outage included."""
        with self._lock:
            return self._down_total_s + self.down_for()

    def error(self, silent_s: float) -> BrokerUnavailableError:
        """The error that ends a read after `silent_s` seconds without an answer."""
        return BrokerUnavailableError(
            f"no Kafka broker answered at {self.bootstrap_servers} for {silent_s:.1f} s "
            f"(broker_timeout_ms={self.broker_timeout_ms})")

# Client properties meaningful to an admin client; the rest (fetch sizes, ...) belong to consumers.
_ADMIN_PREFIXES = ("bootstrap.servers", "security.", "sasl.", "ssl.", "client.id", "socket.",
                   "broker.address.family", "metadata.", "topic.metadata.", "reconnect.",
                   "enable.sparse.connections",
                   "retry.", "debug", "log_level")


class KafkaAdmin:
    """Topic metadata, offsets by spec and committed group offsets, with bounded waits."""

    def __init__(self, bootstrap_servers: str, properties: Mapping[str, str] | None = None,
                 timeout_s: float = 15.0, read_committed: bool = False,
                 health: Optional[BrokerHealth] = None, clock: Clock = SYSTEM_CLOCK) -> None:
        config = dict(CONNECT_DEFAULTS)
        config.update((k, v) for k, v in (properties or {}).items() if k.startswith(_ADMIN_PREFIXES))
        config["bootstrap.servers"] = bootstrap_servers
        config.setdefault("log_level", 0)
        config["error_cb"] = self._on_client_error
        try:
            self._client = AdminClient(config)
        except KafkaException as exc:
            raise ConfigError(f"invalid Kafka client properties: {exc}") from exc
        self.bootstrap_servers = bootstrap_servers
        self.timeout_s = timeout_s
        self._clock = clock
        self.health = health if health is not None else BrokerHealth(bootstrap_servers, clock=clock)
        self._answered = False
        self._closed = threading.Event()
        self._auth_failure: Optional[str] = None
        self._connect_failures: dict[str, str] = {}  # bootstrap address -> librdkafka's last reason
        self._security = {k: str(v) for k, v in config.items()
                          if k.startswith(("security.", "ssl."))}
        self._probed = False
        self._isolation = (IsolationLevel.READ_COMMITTED if read_committed
                           else IsolationLevel.READ_UNCOMMITTED)

    ATTEMPT_S = 5.0
    # A new read whose every bootstrap address has failed to connect for a reason no waiting mends
    # (refused, unresolvable, not Kafka) fails after this long rather than after `timeout_s`.
    CONNECT_FAILURE_S = 1.0

    def close(self) -> None:
        """Stop waiting out an outage: a request in progress ends after its current attempt, so that
        closing a stream does not wait for broker_timeout_ms. Safe from any thread."""
        self._closed.set()

    def _on_client_error(self, error: KafkaError) -> None:
        reason = error.str()
        if authentication_failure(error.code(), reason):
            self._auth_failure = f"{error.name()}: {reason}"
        elif "/bootstrap: " in reason and "timed out" not in reason:
            self._connect_failures[reason.split("/bootstrap: ", 1)[0]] = reason

    def _connect_failed(self) -> bool:
        """Whether every bootstrap address has failed to connect for a reason no waiting mends."""
        return all(address in self._connect_failures
                   for address in bootstrap_addresses(self.bootstrap_servers))

    def _unreachable(self, exc: Exception) -> BrokerUnavailableError:
        """A new read's error for a cluster never reached: one sentence with the address and why."""
        addresses = bootstrap_addresses(self.bootstrap_servers)
        causes = {a: connect_cause(self._connect_failures[a]) for a in addresses
                  if a in self._connect_failures}
        if not causes:
            return BrokerUnavailableError(
                f"no Kafka broker answered at {self.bootstrap_servers} within {self.timeout_s:g} s "
                "(no connection was refused either: a host that is down or a filtered port?)")
        if len(addresses) == 1:
            return BrokerUnavailableError(f"cannot connect to the Kafka broker at {addresses[0]}: "
                                          f"{causes[addresses[0]]}")
        said = "; ".join(f"{a}: {causes.get(a, 'no answer')}" for a in addresses)
        return BrokerUnavailableError(f"cannot connect to any Kafka broker of {self.bootstrap_servers} "
                                      f"({said})")

    def _answer(self, request: Callable[[float], T]) -> T:
        """Run `request(timeout_s)` until the cluster answers it.

        Before the cluster has ever answered this client, silence fails after `timeout_s` (there may
        be no broker at that address at all). Once it has answered, silence is an outage: the request
        is repeated until nobody has answered for the health's `broker_timeout_ms` (an outage seen
        first by a reader counts from when the reader saw it). A security mismatch fails at once.
        Attempts last at most a second before the first answer, so an authentication failure (which
        librdkafka reports only through the error callback, served by `poll`) is seen promptly, and
        at most `ATTEMPT_S` after it, so that an outage is seen (and counted) while it lasts rather
        than hidden in one long request that succeeds once the broker is back.
        """
        started = self._clock.now()
        budget_s = self.health.broker_timeout_ms / 1000
        others_answer_since: Optional[float] = None
        while True:
            attempt_start = self._clock.now()
            if self._answered:
                timeout = min(self.timeout_s, self.ATTEMPT_S, max(0.5, budget_s - self.health.down_for()))
            else:
                timeout = min(1.0, max(0.05, started + self.timeout_s - attempt_start))
            try:
                result = request(timeout)
            except KafkaException as exc:
                self._client.poll(0)
                if self._auth_failure is not None:
                    raise AuthenticationError(
                        f"the Kafka client could not authenticate to {self.bootstrap_servers} "
                        f"(check security.protocol and the sasl./ssl. properties): "
                        f"{self._auth_failure}{security_hint(self._auth_failure)}"
                        f"{self._certificate_cause()}") from exc
                if not self._is_unreachable(exc):
                    raise
                now = self._clock.now()
                if not self._answered:
                    self._check_plaintext_against_tls(exc)
                    if now - started >= self.timeout_s or (
                            self._connect_failed() and now - started >= self.CONNECT_FAILURE_S):
                        raise self._unreachable(exc) from exc
                    self._clock.sleep(max(0.0, attempt_start + 0.2 - now))
                    continue
                # A probe may go to the broker that just died, or time out on a loaded machine:
                # the cluster is taken as silent only when a second probe goes unanswered too.
                if self._cluster_answers() or self._cluster_answers():
                    # One broker is down while others serve: its partitions move to new leaders.
                    # That is not an outage; the request is repeated until `timeout_s`.
                    self.health.up()
                    others_answer_since = others_answer_since or attempt_start
                    if now - others_answer_since >= self.timeout_s or self._closed.is_set():
                        # The table's row for it: partitions without a leader (retriable).
                        raise error_from_code(
                            CODES["LEADER_NOT_AVAILABLE"],
                            f"a request to {self.bootstrap_servers} failed for {now - others_answer_since:.1f} s "
                            f"while other brokers answered (a broker is down and its partitions have no "
                            f"leader yet): {exc}", name=self._error_name(exc)) from exc
                    self._clock.sleep(max(0.0, attempt_start + 0.5 - self._clock.now()), self._closed)
                    continue
                self.health.down(attempt_start)
                if self.health.down_for() >= budget_s or self._closed.is_set():
                    raise self.health.error(self.health.down_for()) from exc
                self._clock.sleep(max(0.0, attempt_start + 1.0 - now), self._closed)
                continue
            self._answered = True
            self.health.up()
            return result

    PROBE_S = 2.0
    # How long a request is repeated while a partition has no leader: Kafka moves the partitions of
    # a dead broker once it is fenced, after broker.session.timeout.ms (9 s by default).
    LEADER_CHANGE_S = 30.0

    def _cluster_answers(self) -> bool:
        """Whether some broker of the cluster answers a metadata request now (librdkafka sends it to
        a broker it is connected to): a failed request then met one broker down, not an outage."""
        try:
            return bool(self._client.list_topics(timeout=self.PROBE_S).brokers)
        except KafkaException:
            return False
    def _certificate_cause(self) -> str:
        """Which certificate check failed (librdkafka's message does not say), or ''."""
        if "certificate verify failed" not in (self._auth_failure or ""):
            return ""
        for address in bootstrap_addresses(self.bootstrap_servers):
            problem = certificate_problem(address, self._security)
            if problem:
                return f" (the certificate of {address}: {problem})"
        return ""

    def _check_plaintext_against_tls(self, exc: Exception) -> None:
        """A client without TLS whose bootstrap server answers TLS: librdkafka only sees a broker
        closing connections, so ask once (before the first answer) and fail at once if so."""
        protocol = self._security.get("security.protocol", "plaintext").lower()
        if self._probed or protocol not in ("plaintext", "sasl_plaintext"):
            return
        self._probed = True
        for address in bootstrap_addresses(self.bootstrap_servers):
            if speaks_tls(address):
                raise AuthenticationError(
                    f"{address} is a TLS listener but security.protocol is "
                    f"{protocol.upper()}: set security.protocol="
                    f"{'SASL_SSL' if protocol == 'sasl_plaintext' else 'SSL (or SASL_SSL)'} "
                    "and ssl.ca.location") from exc

    def cluster_id(self) -> Optional[str]:
        """The cluster's id from its metadata (None when the broker does not say): what a
        checkpoint records to know which cluster it belongs to."""
        return self._answer(lambda timeout: self._client.list_topics(timeout=timeout)).cluster_id or None

    def topics(self, wanted: Callable[[str], bool] = lambda name: True) -> dict[str, int]:
        """Every topic (internal ones excluded) with its partition count.

        A `wanted` topic still electing its leaders (a retriable error in its metadata) is asked for
        again until `timeout_s`, so that a topic created a moment ago is not reported missing.
        """
        pauses = self._pauses()
        while True:
            metadata = self._answer(lambda timeout: self._client.list_topics(timeout=timeout))
            settling = any(t.error is not None and _transient(t.error) and wanted(name)
                           and not name.startswith("__") for name, t in metadata.topics.items())
            pause = next(pauses, None) if settling else None
            if pause is None:
                return {name: len(t.partitions) for name, t in metadata.topics.items()
                        if t.error is None and not name.startswith("__")}
            self._clock.sleep(pause)

    def topic_ids(self, topics: Iterable[str]) -> dict[str, str]:
        """The topic id (KIP-516, as Kafka's tools print it) of each of `topics` that exists: a topic
        deleted and created again under its name gets a new one. Topics that do not exist are left
        out."""
        topics = sorted(set(topics))
        if not topics:
            return {}

        def ask(timeout: float) -> dict[str, str]:
            futures = self._client.describe_topics(TopicCollection(topics), request_timeout=timeout)
            ids = {}
            for name, future in futures.items():
                try:
                    ids[name] = str(future.result().topic_id)
                except KafkaException as exc:
                    error = self._kafka_error(exc)
                    if error is None or error.code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                        raise
            return ids

        return self._retrying(ask, "describe topics")

    def list_offsets(self, partitions: Iterable[TopicPartitionKey],
                     query: OffsetQuery) -> dict[TopicPartitionKey, int]:
        """Offsets of `partitions` for "earliest", "latest" or the first record with timestamp >= ms.

        A timestamp past the last record maps to -1, as Kafka answers it.
        """
        return {tp: offset for tp, (offset, _) in self.offsets_and_timestamps(partitions, query).items()}

    def offsets_and_timestamps(self, partitions: Iterable[TopicPartitionKey],
                               query: OffsetQuery) -> dict[TopicPartitionKey, tuple[int, int]]:
        """(offset, timestamp ms) of `partitions` for `query`: "earliest", "latest", "max_timestamp"
        (the record with the largest timestamp) or the first record with timestamp >= ms.

        Kafka answers a timestamp of -1 for "earliest" and "latest", and (-1, -1) when no record
        matches (an empty partition, or a timestamp past the last record).
        """
        partitions = list(partitions)
        if not partitions:
            return {}
        if query == "earliest":
            spec = OffsetSpec.earliest()
        elif query == "latest":
            spec = OffsetSpec.latest()
        elif query == "max_timestamp":
            spec = OffsetSpec.max_timestamp()
        else:
            spec = OffsetSpec.for_timestamp(int(query))
        request = {TopicPartition(t, p): spec for t, p in partitions}

        def ask(timeout: float) -> dict[TopicPartitionKey, tuple[int, int]]:
            futures = self._client.list_offsets(request, isolation_level=self._isolation,
                                                request_timeout=timeout)
            results = {(tp.topic, tp.partition): f.result() for tp, f in futures.items()}
            unanswered = sorted(tp for tp, r in results.items() if r.offset < -1)
            if unanswered:
                # librdkafka answers -1001 (no offset), without an error, for a partition whose
                # leader is down: the partition is moving to a new leader. Its topic's metadata is
                # refreshed (the new leader is then known sooner) and the request repeated.
                for name in sorted({t for t, _ in unanswered}):
                    try:
                        self._client.list_topics(name, timeout=min(timeout, self.PROBE_S))
                    except KafkaException:
                        pass
                raise KafkaException(KafkaError(
                    KafkaError.LEADER_NOT_AVAILABLE,
                    "no offset (leader unavailable) for " + ", ".join(f"{t}[{p}]" for t, p in unanswered)))
            return {tp: (r.offset, r.timestamp) for tp, r in results.items()}

        topics = ", ".join(sorted({t for t, _ in partitions}))
        return self._retrying(ask, f"list offsets ({query}) of {topics}")

    def committed(self, group_id: str, partitions: Iterable[TopicPartitionKey] | None
                  ) -> dict[TopicPartitionKey, int | None]:
        """The group's committed offsets of `partitions` (None where it has none); with
        `partitions=None`, every partition the group has committed an offset for."""
        if partitions is not None:
            partitions = list(partitions)
            if not partitions:
                return {}
        wanted = None if partitions is None else [TopicPartition(t, p) for t, p in partitions]
        request = [ConsumerGroupTopicPartitions(group_id, wanted)]

        def ask(timeout: float) -> Optional[ConsumerGroupTopicPartitions]:
            futures = self._client.list_consumer_group_offsets(request, request_timeout=timeout)
            try:
                return futures[group_id].result()
            except KafkaException as exc:
                error = self._kafka_error(exc)
                if error is not None and error.code() == KafkaError.GROUP_ID_NOT_FOUND:
                    return None  # a group that does not exist has committed nothing
                raise

        result = self._retrying(ask, f"read committed offsets of group {group_id!r}")
        if result is None:
            return {} if partitions is None else {tp: None for tp in partitions}
        return {(tp.topic, tp.partition): (tp.offset if tp.offset >= 0 else None)
                for tp in result.topic_partitions}

    def _retrying(self, request: Callable[[float], T], what: str) -> T:
        """Run `request(timeout_s)`, repeating it on retriable broker errors until `timeout_s` has
        passed (and through outages as `_answer` does).

        A topic created a moment ago answers NOT_LEADER_FOR_PARTITION or LEADER_NOT_AVAILABLE until
        its leaders are elected; a reader started right after creating a topic must not fail on that.
        """
        pauses = self._pauses(max(self.timeout_s, self.LEADER_CHANGE_S))
        while True:
            try:
                return self._answer(request)
            except KafkaException as exc:
                error = self._kafka_error(exc)
                retriable = error is not None and _transient(error) and not self._is_unreachable(exc)
                pause = next(pauses, None) if retriable else None
                if pause is None:
                    raise self._offsets_error(exc, what) from exc
            self._clock.sleep(pause)

    def _pauses(self, budget_s: Optional[float] = None) -> Iterator[float]:
        """Back-off pauses (20 ms, doubling up to 0.5 s) for as long as they fit in `budget_s`
        (default `timeout_s`)."""
        deadline = self._clock.now() + (self.timeout_s if budget_s is None else budget_s)
        pause = 0.02
        while self._clock.now() + pause <= deadline:
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
        return self._error_from(exc, f"could not {what} on {self.bootstrap_servers}: {exc}")

    def _error_from(self, exc: KafkaException, message: str) -> FastsourceError:
        """The fastsource error of a failed request: the error table decides by its code."""
        error = self._kafka_error(exc)
        return error_from_code(error.code() if error is not None else None, message,
                               name=self._error_name(exc))


def _transient(error: KafkaError) -> bool:
    """Whether asking again may succeed, as the error table says of its code (one list for the admin
    client and the readers). confluent-kafka raises per-partition and per-group errors without
    librdkafka's retriable flag, so the flag is not asked."""
    return kind_of(error.code()).retriable
