"""The exceptions fastsource raises: each names what was wrong (topic, partition, offset, address)."""
from __future__ import annotations


class FastsourceError(Exception):
    """Base class of every fastsource error."""


class ConfigError(FastsourceError, ValueError):
    """An invalid argument or client property."""


class BrokerError(FastsourceError):
    """The local broker launcher could not do what it was asked."""


class BrokerUnavailableError(FastsourceError):
    """No broker answered at the bootstrap address within the allowed time (`request_timeout_s` for
    a broker never reached, `broker_timeout_ms` for an outage during a read)."""


class AuthenticationError(FastsourceError):
    """The client and the broker disagree on security (SASL refused, TLS handshake failed); no retry
    can mend it, so it fails at once with librdkafka's reason."""


class UnknownTopicError(FastsourceError):
    """A topic the source was told to read does not exist."""


class KafkaFetchError(FastsourceError):
    """librdkafka reported an error while fetching; carries its name and coordinates. `retriable`
    errors (a leader moving, a dropped connection) replace the reader instead of failing the read."""

    def __init__(self, message: str, code: int | None = None, name: str | None = None,
                 topic: str | None = None, partition: int | None = None,
                 offset: int | None = None, retriable: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.name = name
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.retriable = retriable


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


class CheckpointMismatchError(ConfigError):
    """A checkpoint was taken for another source (cluster or subscription) than the one restoring."""


class ReaderFailedError(FastsourceError):
    """A reader failed again and again: it was replaced more times in a row than allowed."""


def is_fatal(exc: BaseException) -> bool:
    """Whether a reader's error fails the stream. Fatal: every fastsource error (data loss,
    undecodable records under errors="raise", oversize records, lost brokers past broker_timeout_ms,
    invalid configuration, authentication) except a retriable fetch error. Not fatal: a retriable
    fetch error, or an unexpected crash of the fetcher: the reader is replaced and its splits resume
    after the last record handed out."""
    if isinstance(exc, KafkaFetchError) and type(exc) is KafkaFetchError:
        return not exc.retriable
    if isinstance(exc, (FastsourceError, MemoryError)):
        return True
    return not isinstance(exc, Exception)
