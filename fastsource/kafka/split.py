"""Splits: the unit of work the enumerator hands out, and its mutable per-reader state."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Iterable

import pyarrow as pa

from fastsource.base.reader.source_reader import SplitLineage
from fastsource.errors import ConfigError, SerializationError

NO_STOPPING_OFFSET = None
SERIALIZER_VERSION = 2


@dataclass(frozen=True, order=True)
class KafkaPartitionSplit:
    """A partition of a topic to read from `starting_offset` up to `stopping_offset` (exclusive).

    Offsets are concrete numbers: markers such as "earliest" are resolved by the enumerator before a
    split is created. `stopping_offset=None` means unbounded. The id is stored, not derived, so it
    never changes as the split advances: `topic-partition` for a whole partition,
    `topic-partition@start-stop` for an offset range of a bounded partition (`range_split`).
    """

    topic: str
    partition: int
    starting_offset: int
    stopping_offset: int | None = NO_STOPPING_OFFSET
    split_id: str = ""

    def __post_init__(self) -> None:
        if not self.split_id:
            object.__setattr__(self, "split_id", f"{self.topic}-{self.partition}")
        if self.stopping_offset is not None and self.stopping_offset < self.starting_offset:
            raise ConfigError(f"the stopping offset {self.stopping_offset} of {self.topic}"
                              f"[{self.partition}] is before its starting offset "
                              f"{self.starting_offset}: nothing lies between them")

    @classmethod
    def range_split(cls, topic: str, partition: int, start: int, stop: int) -> "KafkaPartitionSplit":
        """The offsets `[start, stop)` of a partition as a split of their own."""
        return cls(topic, partition, start, stop, f"{topic}-{partition}@{start}-{stop}")

    @property
    def is_range(self) -> bool:
        """Whether the split is an offset range rather than a whole partition."""
        return "@" in self.split_id

    @property
    def topic_partition(self) -> tuple[str, int]:
        """The `(topic, partition)` key used by offsets initializers."""
        return (self.topic, self.partition)

    @property
    def is_bounded(self) -> bool:
        """Whether the split ends at a stopping offset."""
        return self.stopping_offset is not None

    def with_starting_offset(self, offset: int) -> "KafkaPartitionSplit":
        """The same split (same id) resuming at `offset`."""
        return KafkaPartitionSplit(self.topic, self.partition, offset, self.stopping_offset,
                                   self.split_id)

    def with_stopping_offset(self, offset: int | None) -> "KafkaPartitionSplit":
        """The same split (same id) ending at `offset` (None: unbounded)."""
        return KafkaPartitionSplit(self.topic, self.partition, self.starting_offset, offset,
                                   self.split_id)


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
    """A versioned, JSON-ready form of a split (version 2: the id is stored)."""
    return {"version": SERIALIZER_VERSION, "id": split.split_id, "topic": split.topic,
            "partition": split.partition, "starting_offset": split.starting_offset,
            "stopping_offset": split.stopping_offset}


def deserialize_split(data: dict[str, Any]) -> KafkaPartitionSplit:
    """Inverse of `serialize_split`; reads every version so far (version 1 had no id: whole
    partitions) and rejects unknown versions and malformed fields."""
    version = data.get("version") if isinstance(data, dict) else None
    if version not in (1, SERIALIZER_VERSION):
        raise SerializationError(f"unknown split serializer version {version!r} "
                                 f"(this fastsource reads versions 1 to {SERIALIZER_VERSION})")
    try:
        stop = data["stopping_offset"]
        split_id = str(data["id"]) if version >= 2 else ""
        return KafkaPartitionSplit(str(data["topic"]), int(data["partition"]),
                                   int(data["starting_offset"]), None if stop is None else int(stop),
                                   split_id)
    except (KeyError, TypeError, ValueError) as exc:
        raise SerializationError(f"malformed serialized split {data!r}: {exc}") from exc


def first_positions(tail: pa.RecordBatch, lineage: Iterable[SplitLineage]) -> dict[str, int]:
    """Per split of `lineage` (a batch's `SplitLineage` entries) with records among the rows `tail`,
    the offset of its first one there: where the split resumes when `tail` is taken back."""
    columns = tail.select(["topic", "partition", "offset"]).to_pydict()
    offsets: dict[tuple[str, int], list[int]] = {}
    for topic, partition, offset in zip(columns["topic"], columns["partition"], columns["offset"]):
        offsets.setdefault((topic, partition), []).append(offset)
    positions = {}
    for entry in lineage:
        mine = [o for o in offsets.get(entry.split.topic_partition, ())
                if entry.first_offset <= o < entry.next_offset]
        if mine:
            positions[entry.split_id] = min(mine)
    return positions
