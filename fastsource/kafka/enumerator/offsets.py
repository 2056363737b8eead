"""Offsets initializers: how a split's starting or stopping offset is chosen, resolved to numbers."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Optional

from fastsource.kafka.admin import KafkaAdmin, TopicPartitionKey
from fastsource.errors import ConfigError, FastsourceError, OffsetOutOfRangeError
from fastsource.validation import check_int, check_partitions

log = logging.getLogger(__name__)

_RESETS = ("earliest", "latest")


@dataclass(frozen=True)
class OffsetsInitializer:
    """A rule mapping partitions to concrete offsets; build one with the class methods.

    `kind` is one of earliest, latest, committed, timestamp, offsets. `reset` ("earliest"/"latest")
    is where a partition starts when the rule's offset is missing (no committed offset) or outside
    the partition's range; `unlisted` is where partitions missing from `offsets(...)` start (or stop).
    Without them those cases are errors: an offset never falls back silently.
    """

    kind: str
    timestamp_ms: Optional[int] = None
    offsets_map: Mapping[TopicPartitionKey, int] = field(default_factory=dict)
    reset: Optional[str] = None
    unlisted: Optional[str] = None

    def __post_init__(self) -> None:
        for name in ("reset", "unlisted"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or value not in _RESETS):
                raise ConfigError(f"{name} must be one of {_RESETS} or None, not {value!r}")

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
    def offsets(cls, offsets: Mapping[TopicPartitionKey, int], reset: Optional[str] = None,
                unlisted: Optional[str] = None) -> "OffsetsInitializer":
        """Explicit offsets per (topic, partition). Every listed partition must exist. As starting
        offsets, one outside its partition's range is an error unless `reset` ("earliest"/"latest")
        says where to start instead; partitions read but not listed are an error unless `unlisted`
        says where they start (or, as stopping offsets, stop), with a warning naming them."""
        if not isinstance(offsets, Mapping):
            raise ConfigError(f"offsets must be a mapping of (topic, partition) to an offset, not {offsets!r}")
        check_partitions(offsets.keys(), "offsets")
        clean = {}
        for (topic, partition), value in offsets.items():
            clean[(topic, partition)] = check_int(f"offsets[{(topic, partition)!r}]", value, minimum=0)
        return cls("offsets", offsets_map=clean, reset=reset, unlisted=unlisted)

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
            chosen = self._listed(partitions, earliest, latest, stopping)
        else:
            raise ConfigError(f"unknown offsets initializer kind {self.kind!r}")
        if self.kind == "committed" and self.reset is None:
            missing = [tp for tp in partitions if chosen.get(tp) is None]
            if missing:
                raise FastsourceError(
                    f"group {group_id!r} has no committed offset for "
                    f"{', '.join(f'{t}[{p}]' for t, p in missing)} and no reset was given: choose "
                    "where such partitions start with committed(reset='earliest'|'latest') "
                    "(fastsource read: --reset earliest|latest)")
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
                    f"offset {offset} of {tp[0]}[{tp[1]}] is outside the partition's range: it starts "
                    f"at offset {earliest[tp]} and ends at {latest[tp]}; give an offset in that range "
                    "or a reset ('earliest' or 'latest')",
                    topic=tp[0], partition=tp[1], offset=offset)
        return result

    def _listed(self, partitions: list[TopicPartitionKey], earliest: Mapping[TopicPartitionKey, int],
                latest: Mapping[TopicPartitionKey, int], stopping: bool) -> dict[TopicPartitionKey, int]:
        """The listed offsets of `partitions`, with `unlisted` applied to the others; an error for a
        listed partition that is not read (no such partition, or not subscribed)."""
        read = set(partitions)
        strangers = sorted(set(self.offsets_map) - read)
        if strangers:
            read_of: dict[str, list[int]] = {}
            for topic, partition in sorted(read):
                read_of.setdefault(topic, []).append(partition)
            named = "; ".join(f"{t}[{p}] (offset {self.offsets_map[(t, p)]}; " + (
                f"partitions read of {t}: {', '.join(map(str, read_of[t]))})" if t in read_of
                else f"topic {t} is not read)") for t, p in strangers)
            raise ConfigError(f"offsets were given for partitions that this source does not read: {named}")
        missing = sorted(read - set(self.offsets_map))
        which = "stopping" if stopping else "starting"
        if missing and self.unlisted is None:
            raise ConfigError(
                f"no {which} offset was given for {', '.join(f'{t}[{p}]' for t, p in missing)}; list "
                "every partition read, or choose where the others go with unlisted='earliest'|'latest'")
        if missing:
            log.warning("%s offsets not listed for %s: they %s at %s", which,
                        ", ".join(f"{t}[{p}]" for t, p in missing),
                        "stop" if stopping else "start", self.unlisted)
        ends = earliest if self.unlisted == "earliest" else latest
        return {tp: self.offsets_map[tp] if tp in self.offsets_map else ends[tp] for tp in partitions}
