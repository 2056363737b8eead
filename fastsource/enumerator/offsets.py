"""Offsets initializers: how a split's starting or stopping offset is chosen, resolved to numbers."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping, Optional

from fastsource.io.admin import KafkaAdmin, TopicPartitionKey
from fastsource.errors import ConfigError, FastsourceError, OffsetOutOfRangeError
from fastsource.validation import check_int, check_partitions

_RESETS = ("earliest", "latest")


@dataclass(frozen=True)
class OffsetsInitializer:
    """A rule mapping partitions to concrete offsets; build one with the class methods.

    `kind` is one of earliest, latest, committed, timestamp, offsets. `reset` is the fallback
    ("earliest"/"latest") where the rule gives no offset: no committed offset, a partition missing from
    `offsets(...)`, or a listed offset outside the partition's range.
    """

    kind: str
    timestamp_ms: Optional[int] = None
    offsets_map: Mapping[TopicPartitionKey, int] = field(default_factory=dict)
    reset: Optional[str] = None

    def __post_init__(self) -> None:
        if self.reset is not None and (not isinstance(self.reset, str) or self.reset not in _RESETS):
            raise ConfigError(f"reset (the offset reset strategy) must be one of {_RESETS} or None, not "
                              f"{self.reset!r}")

    @classmethod
    def earliest(cls) -> "OffsetsInitializer":
        """The first offset still in each partition."""
        return cls("earliest")

    @classmethod
    def latest(cls) -> "OffsetsInitializer":
        """The end of each partition at resolution time (the high watermark, or the last stable
        offset under read_committed)."""
        return cls("latest")

    @classmethod
    def committed(cls, reset: Optional[str] = None) -> "OffsetsInitializer":
        """The consumer group's committed offsets; `reset` where the group has none (else an error)."""
        return cls("committed", reset=reset)

    @classmethod
    def timestamp(cls, ms: int) -> "OffsetsInitializer":
        """The first record whose timestamp is >= `ms` (the partition end when none is)."""
        check_int("ms", ms, minimum=0)
        return cls("timestamp", timestamp_ms=ms)

    @classmethod
    def offsets(cls, offsets: Mapping[TopicPartitionKey, int],
                reset: Optional[str] = "earliest") -> "OffsetsInitializer":
        """Explicit offsets per (topic, partition); `reset` for partitions not listed or out of range."""
        if not isinstance(offsets, Mapping):
            raise ConfigError(f"offsets must be a mapping of (topic, partition) to an offset, not {offsets!r}")
        check_partitions(offsets.keys(), "offsets")
        clean = {}
        for (topic, partition), value in offsets.items():
            clean[(topic, partition)] = check_int(f"offsets[{(topic, partition)!r}]", value, minimum=0)
        return cls("offsets", offsets_map=clean, reset=reset)

    def resolve(self, admin: KafkaAdmin, partitions: Iterable[TopicPartitionKey],
                group_id: Optional[str] = None, stopping: bool = False) -> dict[TopicPartitionKey, int]:
        """Concrete offsets for `partitions`, in as few requests as the rule needs.

        As stopping offsets, explicitly listed offsets are taken as they are, even past the current end
        (the read then waits for those records); as starting offsets they must lie in the partition.
        """
        partitions = list(partitions)
        if not partitions:
            return {}
        if self.kind in ("earliest", "latest"):
            return admin.list_offsets(partitions, self.kind)
        latest = admin.list_offsets(partitions, "latest")
        if self.kind == "timestamp":
            found = admin.list_offsets(partitions, self.timestamp_ms)
            return {tp: (found[tp] if found[tp] >= 0 else latest[tp]) for tp in partitions}
        earliest = admin.list_offsets(partitions, "earliest")
        if self.kind == "committed":
            if group_id is None:
                raise ConfigError("OffsetsInitializer.committed() needs a group_id on the source")
            chosen = admin.committed(group_id, partitions)
        elif self.kind == "offsets":
            chosen = {tp: self.offsets_map.get(tp) for tp in partitions}
        else:
            raise ConfigError(f"unknown offsets initializer kind {self.kind!r}")
        result = {}
        for tp in partitions:
            offset = chosen.get(tp)
            if offset is not None and stopping and self.kind == "offsets":
                result[tp] = offset
            elif offset is not None and earliest[tp] <= offset <= latest[tp]:
                result[tp] = offset
            elif self.reset is not None:
                result[tp] = earliest[tp] if self.reset == "earliest" else latest[tp]
            elif offset is None:
                raise FastsourceError(f"no {self.kind} offset for {tp[0]}[{tp[1]}]"
                                      f"{' in group ' + repr(group_id) if group_id else ''} and no "
                                      "reset strategy was given")
            else:
                raise OffsetOutOfRangeError(
                    f"offset {offset} of {tp[0]}[{tp[1]}] is outside the partition's range "
                    f"[{earliest[tp]}, {latest[tp]}] and no reset strategy was given",
                    topic=tp[0], partition=tp[1], offset=offset)
        return result
