"""Splits: the unit of work the enumerator hands out, and its mutable per-reader state."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from fastsource.errors import ConfigError, SerializationError

NO_STOPPING_OFFSET = None
SERIALIZER_VERSION = 1


@dataclass(frozen=True, order=True)
class KafkaPartitionSplit:
    """A partition of a topic to read from `starting_offset` up to `stopping_offset` (exclusive).

    Offsets are concrete numbers: markers such as "earliest" are resolved by the enumerator before a
    split is created. `stopping_offset=None` means unbounded.
    """

    topic: str
    partition: int
    starting_offset: int
    stopping_offset: int | None = NO_STOPPING_OFFSET

    def __post_init__(self) -> None:
        if self.stopping_offset is not None and self.stopping_offset < self.starting_offset:
            raise ConfigError(f"the stopping offset {self.stopping_offset} of {self.topic}"
                              f"[{self.partition}] is before its starting offset "
                              f"{self.starting_offset}: nothing lies between them")

    @property
    def split_id(self) -> str:
        """`topic-partition`: unique per source, stable across restarts."""
        return f"{self.topic}-{self.partition}"

    @property
    def topic_partition(self) -> tuple[str, int]:
        """The `(topic, partition)` key used by offsets initializers."""
        return (self.topic, self.partition)

    @property
    def is_bounded(self) -> bool:
        """Whether the split ends at a stopping offset."""
        return self.stopping_offset is not None

    def with_starting_offset(self, offset: int) -> "KafkaPartitionSplit":
        """The same split resuming at `offset`."""
        return KafkaPartitionSplit(self.topic, self.partition, offset, self.stopping_offset)


@dataclass
class KafkaPartitionSplitState:
    """What a reader knows of a split it reads: the next offset to emit and the max event time seen.

    Advanced only when a batch is handed to the user, so a snapshot covers exactly what was emitted.
    `last_activity` (monotonic time of the last emitted record) and `paused` (by watermark alignment)
    are runtime facts for the watermark; only the offset is checkpointed.
    """

    split: KafkaPartitionSplit
    current_offset: int = field(default=-1)
    max_timestamp: int | None = None
    records: int = 0
    bytes: int = 0
    last_activity: float = field(default_factory=time.monotonic)
    paused: bool = False

    def __post_init__(self) -> None:
        if self.current_offset < 0:
            self.current_offset = self.split.starting_offset

    @property
    def split_id(self) -> str:
        return self.split.split_id

    def advance(self, next_offset: int, max_timestamp: int, records: int, nbytes: int) -> None:
        """Account for one emitted batch's records of this split."""
        self.current_offset = next_offset
        if max_timestamp >= 0 and (self.max_timestamp is None or max_timestamp > self.max_timestamp):
            self.max_timestamp = max_timestamp
        self.records += records
        self.bytes += nbytes
        self.last_activity = time.monotonic()

    def to_split(self) -> KafkaPartitionSplit:
        """The split that resumes exactly after the records emitted so far."""
        return self.split.with_starting_offset(self.current_offset)


def serialize_split(split: KafkaPartitionSplit) -> dict[str, Any]:
    """A versioned, JSON-ready form of a split."""
    return {"version": SERIALIZER_VERSION, "topic": split.topic, "partition": split.partition,
            "starting_offset": split.starting_offset, "stopping_offset": split.stopping_offset}


def deserialize_split(data: dict[str, Any]) -> KafkaPartitionSplit:
    """Inverse of `serialize_split`; rejects unknown versions and malformed fields."""
    version = data.get("version") if isinstance(data, dict) else None
    if version != SERIALIZER_VERSION:
        raise SerializationError(f"unknown split serializer version {version!r} "
                                 f"(this fastsource reads version {SERIALIZER_VERSION})")
    try:
        stop = data["stopping_offset"]
        return KafkaPartitionSplit(str(data["topic"]), int(data["partition"]),
                                   int(data["starting_offset"]), None if stop is None else int(stop))
    except (KeyError, TypeError, ValueError) as exc:
        raise SerializationError(f"malformed serialized split {data!r}: {exc}") from exc
