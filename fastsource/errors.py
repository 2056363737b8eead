"""The exceptions fastsource raises (each names what was wrong: topic, partition, offset, address), and
the one table that says, for every librdkafka/Kafka error code and every code of fastsource's compiled
units, which exception it becomes, whether asking again may succeed (`retriable`) and whether it fails
the stream (`fatal`). The compiled units return codes with librdkafka's words; callers (the split
reader, the admin client, the formats, the Ray runtime) build their errors with `error_from_code`."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


class FastsourceError(Exception):
    """Base class of every fastsource error. `fatal`: the error fails the stream (otherwise the reader
    that raised it is replaced and its splits resume); `retriable`: asking again may succeed. Both
    belong to the error, not its class (one class covers codes of both kinds)."""

    def __init__(self, *args: object, fatal: bool = True, retriable: bool = False) -> None:
        super().__init__(*args)
        self.fatal = fatal
        self.retriable = retriable


class ConfigError(FastsourceError, ValueError):
    """An invalid argument or client property."""


class BrokerError(FastsourceError):
    """The local broker launcher could not do what it was asked."""


class RegistryLauncherError(FastsourceError):
    """The local Schema Registry launcher could not do what it was asked (no Java 21+, port taken,
    the registry did not start)."""


class BrokerUnavailableError(FastsourceError):
    """No broker answered at the bootstrap address within the allowed time (`request_timeout_s` for
    a broker never reached, `broker_timeout_ms` for an outage during a read)."""


class AuthenticationError(FastsourceError):
    """The client and the broker disagree on security (SASL refused, TLS handshake failed); no retry
    can mend it, so it fails at once with librdkafka's reason."""


class UnknownTopicError(FastsourceError):
    """A topic the source was told to read does not exist."""


class KafkaFetchError(FastsourceError):
    """librdkafka or Kafka reported an error; carries its code, name and coordinates. `retriable`
    errors (a leader moving, a dropped connection) replace the reader instead of failing the read
    (`fatal` defaults to `not retriable`)."""

    def __init__(self, message: str, code: int | None = None, name: str | None = None,
                 topic: str | None = None, partition: int | None = None,
                 offset: int | None = None, retriable: bool = False,
                 fatal: Optional[bool] = None) -> None:
        super().__init__(message, fatal=not retriable if fatal is None else fatal, retriable=retriable)
        self.code = code
        self.name = name
        self.topic = topic
        self.partition = partition
        self.offset = offset


class OffsetOutOfRangeError(KafkaFetchError):
    """Data loss: the offset to read from no longer exists (deleted by retention) or never did."""


class RecordTooLargeError(KafkaFetchError):
    """A record is larger than the fetch limits allow; it is reported, never skipped."""


class DecodeError(FastsourceError):
    """A record's key or value could not be decoded by the chosen format."""

    def __init__(self, message: str, topic: str, partition: int, offset: int) -> None:
        super().__init__(message)
        self.topic = topic
        self.partition = partition
        self.offset = offset


class SchemaRegistryError(FastsourceError):
    """A Schema Registry could not serve a schema: unreachable past the allowed time, credentials
    refused (401/403, at once), or a subject with no schema. Names the registry's URL (never a
    credential) and, where it applies, the schema id; `status` is the HTTP status if one came."""

    def __init__(self, message: str, url: str, status: int | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status = status


class CheckpointError(FastsourceError, OSError):
    """The checkpoint directory or a checkpoint's file could not be written. A checkpoint that failed
    so committed nothing; the next one covers all of it."""


class CheckpointTimeoutError(CheckpointError, TimeoutError):
    """A checkpoint's snapshot did not complete in time (the enumerator or a reader did not answer)."""


class SerializationError(FastsourceError):
    """Serialized state (a split, a checkpoint) is malformed or of an unknown version."""


class DirectoryLockedError(CheckpointError):
    """A checkpoint or dataset directory is in use by another stream or read (named with its pid and
    host); each directory serves one at a time."""


class TopicRecreatedError(FastsourceError):
    """A topic read (or recorded in the checkpoint) was deleted and created again under the same name:
    its id changed, so its offsets no longer mean the same records."""

    def __init__(self, message: str, topic: str, old_id: str, new_id: str) -> None:
        super().__init__(message)
        self.topic = topic
        self.old_id = old_id
        self.new_id = new_id


class DeadLettersWarning(UserWarning):
    """`read_all()` diverted undecodable records (errors="dead_letter"); the warning gives their count
    and how to get them."""


class CheckpointMismatchError(ConfigError):
    """A checkpoint was taken for another source (cluster or subscription) than the one restoring."""


class ReaderFailedError(FastsourceError):
    """A reader failed again and again: it was replaced more times in a row than allowed."""


class ReaderActorDiedError(FastsourceError):
    """A reader's Ray actor died or stopped answering (killed, its node lost). Built from the table
    (`FS_READER_DIED`): not fatal, the stream replaces the reader with a new actor."""


def is_fatal(exc: BaseException) -> bool:
    """Whether a reader's error fails the stream: a fastsource error says so itself (`fatal`, set
    from the error table for coded errors: data loss, oversize records, lost brokers past
    broker_timeout_ms, authentication are; a leader moving or a dropped connection is not; every
    other fastsource error is). Out of memory is fatal; an unexpected crash of the fetcher is not:
    the reader is replaced and its splits resume after the last record handed out."""
    if isinstance(exc, FastsourceError):
        return exc.fatal
    if isinstance(exc, MemoryError):
        return True
    return not isinstance(exc, Exception)


class CoreError(Exception):
    """What a compiled unit reports: a code of the error table, librdkafka's (or the unit's) reason,
    and the coordinates it concerns. It never leaves fastsource: callers turn it into a
    FastsourceError with `error_from_code` and words of their own.

    `candidates` lists `(topic, partition, next offset)` of the splits it may concern when the code
    does not say which one (a fetch response too large for the client's limits)."""

    def __init__(self, code: int, name: Optional[str], reason: str, topic: Optional[str] = None,
                 partition: Optional[int] = None, offset: Optional[int] = None,
                 candidates: Optional[list[tuple[str, int, int]]] = None) -> None:
        self.code = code
        self.name = name or kind_of(code).name
        self.reason = reason
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.candidates = candidates or []
        super().__init__(f"{self.name}{self.where()}: {reason}")

    def where(self) -> str:
        """' on topic[partition] at offset N' (as far as known), or ''."""
        if self.topic is None:
            return ""
        where = f" on {self.topic}[{self.partition}]"
        if self.offset is not None and self.offset >= 0:
            where += f" at offset {self.offset}"
        return where


# ------------------------------------------------------------------------------------------------
# The error table.

# Codes of fastsource's compiled units (outside librdkafka's range, which ends at -200).
FS_OUT_OF_MEMORY = -10001      # a batch's builders could not grow
FS_COLUMN_TOO_LARGE = -10002   # a column of one batch past Arrow's 2 GiB of 32-bit offsets
FS_READER_DIED = -10003        # a reader's Ray actor died or did not answer


@dataclass(frozen=True)
class ErrorKind:
    """One row of the table: what an error code becomes."""

    code: int
    name: str                  # librdkafka's name of the code (rd_kafka_err2name), or fastsource's
    error: type                # the FastsourceError subclass it is raised as
    retriable: bool            # asking again (a repeated request, a new reader) may succeed
    fatal: bool                # it fails the stream (else the reader is replaced)


def _rows(error: type, retriable: bool, *codes: tuple[int, str]) -> list[ErrorKind]:
    return [ErrorKind(code, name, error, retriable, not retriable) for code, name in codes]


ERROR_TABLE: dict[int, ErrorKind] = {row.code: row for row in [
    # Conditions that pass: a leader or coordinator moving, a dropped connection, a timeout, a
    # partition or topic not yet in the metadata, a replica's log directory failing (the partition's
    # leadership moves to another replica: Kafka's protocol marks KAFKA_STORAGE_ERROR retriable, so
    # the admin client repeats the request and a reader is replaced, its splits resuming).
    *_rows(KafkaFetchError, True,
           (-195, "_TRANSPORT"), (-192, "_MSG_TIMED_OUT"), (-190, "_UNKNOWN_PARTITION"),
           (-188, "_UNKNOWN_TOPIC"), (-185, "_TIMED_OUT"), (-184, "_QUEUE_FULL"),
           (3, "UNKNOWN_TOPIC_OR_PART"), (5, "LEADER_NOT_AVAILABLE"), (6, "NOT_LEADER_FOR_PARTITION"),
           (7, "REQUEST_TIMED_OUT"), (13, "NETWORK_EXCEPTION"), (14, "COORDINATOR_LOAD_IN_PROGRESS"),
           (15, "COORDINATOR_NOT_AVAILABLE"), (16, "NOT_COORDINATOR"), (19, "NOT_ENOUGH_REPLICAS"),
           (56, "KAFKA_STORAGE_ERROR"), (74, "FENCED_LEADER_EPOCH"), (75, "UNKNOWN_LEADER_EPOCH"),
           (78, "OFFSET_NOT_AVAILABLE")),
    # Data loss: the offset to read from is gone (retention) or past the end.
    *_rows(OffsetOutOfRangeError, False, (1, "OFFSET_OUT_OF_RANGE"), (-140, "_AUTO_OFFSET_RESET")),
    *_rows(RecordTooLargeError, False, (10, "MSG_SIZE_TOO_LARGE"),
           (FS_COLUMN_TOO_LARGE, "FS_COLUMN_TOO_LARGE")),
    # The client and the broker disagree on security: no retry mends it.
    *_rows(AuthenticationError, False, (-181, "_SSL"), (-169, "_AUTHENTICATION"),
           (58, "SASL_AUTHENTICATION_FAILED")),
    # Lost every broker for broker_timeout_ms (the consumer has waited already).
    *_rows(BrokerUnavailableError, False, (-187, "_ALL_BROKERS_DOWN")),
    *_rows(KafkaFetchError, False, (-193, "_RESOLVE"), (-150, "_FATAL"),
           (29, "TOPIC_AUTHORIZATION_FAILED"), (FS_OUT_OF_MEMORY, "FS_OUT_OF_MEMORY")),
    *_rows(ReaderActorDiedError, True, (FS_READER_DIED, "FS_READER_DIED")),
]}

# The codes by name, for the callers that name one.
CODES: dict[str, int] = {row.name: row.code for row in ERROR_TABLE.values()}


def kind_of(code: Optional[int]) -> ErrorKind:
    """The table's row of `code`. A code it does not list is an error of librdkafka or Kafka that
    fails the read: a fatal KafkaFetchError."""
    row = ERROR_TABLE.get(code) if code is not None else None
    return row if row is not None else ErrorKind(code or 0, f"ERR_{code}", KafkaFetchError, False, True)


def error_from_code(code: Optional[int], message: str, *, name: Optional[str] = None,
                    topic: Optional[str] = None, partition: Optional[int] = None,
                    offset: Optional[int] = None) -> FastsourceError:
    """The FastsourceError that `code` is (class, retriable, fatal from the table), with `message`."""
    kind = kind_of(code)
    if issubclass(kind.error, KafkaFetchError):
        return kind.error(message, code=code, name=name or kind.name, topic=topic, partition=partition,
                          offset=offset, retriable=kind.retriable, fatal=kind.fatal)
    error = kind.error(message, fatal=kind.fatal, retriable=kind.retriable)
    error.code = code
    return error


# librdkafka reports a TLS client talking to a PLAINTEXT listener (the handshake fails), and a broker
# sending a TLS alert (e.g. it does not accept the client certificate), as transport errors.
_TLS_REFUSALS = ("SSL handshake failed", "ssl/tls alert")


def authentication_failure(code: int, reason: str) -> bool:
    """Whether a client error is a security mismatch (SASL refused, TLS handshake failed or refused by
    the broker) rather than a broker that is away: the one place librdkafka's words are read for it."""
    if kind_of(code).error is AuthenticationError:
        return True
    return code == CODES["_TRANSPORT"] and any(text in reason for text in _TLS_REFUSALS)


# The JSON pre-scan's problem codes (includes/json_scan.h, above FS_JSON_NULL) in words.
JSON_PROBLEMS = {2: "the value is not a JSON object", 3: "objects and arrays nested deeper than max_depth",
                 4: "invalid UTF-8", 5: "a raw control character", 6: "an invalid escape in a string",
                 7: "the JSON object is truncated", 8: "data after the JSON object"}
