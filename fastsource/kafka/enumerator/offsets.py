"""Offsets initializers: how a split's starting or stopping offset is chosen, resolved to numbers."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Optional, Union

from fastsource.kafka.admin import KafkaAdmin, TopicPartitionKey
from fastsource.errors import ConfigError, FastsourceError, OffsetOutOfRangeError
from fastsource.validation import check_int, check_partitions

log = logging.getLogger(__name__)

_RESETS = ("earliest", "latest")


@dataclass(frozen=True, order=True)
class AtTimestamp:
    """The first record whose timestamp is >= `ms` (epoch milliseconds)."""

    ms: int


# Where in a partition: "earliest", "latest", an offset, or the first record at or after a time.
OffsetSpec = Union[str, int, AtTimestamp]


@dataclass(frozen=True)
class ResolvedOffsets:
    """Each partition's spec as an offset and, when asked for, every partition's bounds."""

    offsets: dict[TopicPartitionKey, Optional[int]]
    earliest: dict[TopicPartitionKey, int] = field(default_factory=dict)
    latest: dict[TopicPartitionKey, int] = field(default_factory=dict)


def resolve_specs(admin: KafkaAdmin, specs: Mapping[TopicPartitionKey, Optional[OffsetSpec]],
                  bounds: bool = False) -> ResolvedOffsets:
    """The offsets of per-partition `specs`, in one list-offsets request per kind of question
    (earliest, latest, each distinct timestamp); with `bounds`, every partition's earliest and
    latest offsets too. A timestamp after a partition's last record resolves to its latest offset
    (where the next record will be); an integer is taken as it is and None stays None (the caller
    judges both against the bounds). The enumerator's initializers and Ray's `read_kafka` both
    resolve through here."""
    partitions = sorted(specs)
    stamps = sorted({spec for spec in specs.values() if isinstance(spec, AtTimestamp)})
    earliest = latest = {}
    if bounds or any(spec == "earliest" for spec in specs.values()):
        earliest = admin.list_offsets(partitions if bounds else
                                      [tp for tp in partitions if specs[tp] == "earliest"], "earliest")
    if bounds or stamps or any(spec == "latest" for spec in specs.values()):
        latest = admin.list_offsets(partitions if bounds else
                                    [tp for tp in partitions if specs[tp] == "latest"
                                     or isinstance(specs[tp], AtTimestamp)], "latest")
    found: dict[tuple[TopicPartitionKey, AtTimestamp], int] = {}
    for stamp in stamps:
        wanted = [tp for tp in partitions if specs[tp] == stamp]
        found.update(((tp, stamp), offset) for tp, offset in admin.list_offsets(wanted, stamp.ms).items())
    offsets: dict[TopicPartitionKey, Optional[int]] = {}
    for tp in partitions:
        spec = specs[tp]
        if spec == "earliest":
            offsets[tp] = earliest[tp]
        elif spec == "latest":
            offsets[tp] = latest[tp]
        elif isinstance(spec, AtTimestamp):
            offsets[tp] = found[(tp, spec)] if found[(tp, spec)] >= 0 else latest[tp]
        elif spec is None or isinstance(spec, int):
            offsets[tp] = spec
        else:
            raise ConfigError(f"unknown offset spec {spec!r} for {tp[0]}[{tp[1]}]")
    return ResolvedOffsets(offsets, earliest if bounds else {}, latest if bounds else {})


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
        if self.kind in ("earliest", "latest", "timestamp"):
            spec: OffsetSpec = self.kind if self.timestamp_ms is None else AtTimestamp(self.timestamp_ms)
            return resolve_specs(admin, {tp: spec for tp in partitions}).offsets  # type: ignore[return-value]
        if self.kind == "committed":
            if group_id is None:
                raise ConfigError("OffsetsInitializer.committed() needs a group_id on the source")
            committed = admin.committed(group_id, partitions)
            resolved = resolve_specs(admin, {tp: committed.get(tp) for tp in partitions}, bounds=True)
        elif self.kind == "offsets":
            resolved = resolve_specs(admin, self._listed(partitions, stopping), bounds=True)
        else:
            raise ConfigError(f"unknown offsets initializer kind {self.kind!r}")
        chosen, earliest, latest = resolved.offsets, resolved.earliest, resolved.latest
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

    def _listed(self, partitions: list[TopicPartitionKey], stopping: bool) -> dict[TopicPartitionKey, OffsetSpec]:
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
        return {tp: self.offsets_map[tp] if tp in self.offsets_map else str(self.unlisted)
                for tp in partitions}
