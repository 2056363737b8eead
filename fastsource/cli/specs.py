"""Command-line offset specs (`--from`, `--to`) turned into offsets initializers."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Optional, Sequence

from fastsource.errors import ConfigError
from fastsource.kafka.enumerator.offsets import OffsetsInitializer


# ISO-8601 in its extended form: a date, optionally a time (T or a space) with optional seconds and
# fraction (any number of digits, "." or ","), optionally a zone (Z, +HH, +HH:MM, +HHMM). Parsed here
# rather than by datetime.fromisoformat, which accepts fractions and "Z" only from Python 3.11 on.
_ISO_TIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?"
    r"(?:([Zz])|([+-])(\d{2})(?::?(\d{2}))?)?)?")

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def parse_time_ms(text: str) -> Optional[int]:
    """Epoch milliseconds from digits or an ISO-8601 time (naive times are UTC; fractions of a
    millisecond are cut); None if neither."""
    if text.isdigit():
        return int(text)
    match = _ISO_TIME.fullmatch(text.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, _, sign, zone_h, zone_m = match.groups()
    try:
        zone = timezone.utc
        if sign:
            shift = timedelta(hours=int(zone_h), minutes=int(zone_m or 0))
            zone = timezone(shift if sign == "+" else -shift)
        moment = datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0),
                          int(second or 0), tzinfo=zone)
    except ValueError:  # a month 13, a day 31 of a short month, a zone of 24 hours or more
        return None
    millis = int((fraction or "0")[:3].ljust(3, "0"))
    return (moment - _EPOCH) // timedelta(seconds=1) * 1000 + millis


def parse_offsets(text: str, topics: Sequence[str]) -> Optional[dict[tuple[str, int], int]]:
    """`topic:partition=offset,...` (or `partition=offset,...` with a single topic); None if not that."""
    if "=" not in text:
        return None
    result = {}
    for item in text.split(","):
        where, _, offset = item.strip().partition("=")
        topic, _, partition = where.rpartition(":")
        if not topic:
            if len(topics) != 1:
                raise ConfigError(f"offset spec {item!r} needs topic:partition=offset with several topics")
            topic = topics[0]
        if not partition.isdigit() or not offset.strip().isdigit():
            raise ConfigError(f"bad offset spec {item!r}: expected [topic:]partition=offset")
        result[(topic, int(partition))] = int(offset)
    return result


def _offsets_or_time(spec: str, topics: Sequence[str], unlisted: str) -> Optional[OffsetsInitializer]:
    """The initializer for a per-partition offsets spec or a time spec; None if `spec` is neither.

    Partitions the spec does not name keep the option's default (`unlisted`), with a warning naming
    them; a named partition that does not exist, or a starting offset outside its partition, is an
    error."""
    offsets = parse_offsets(spec, topics)
    if offsets is not None:
        return OffsetsInitializer.offsets(offsets, unlisted=unlisted)
    ms = parse_time_ms(spec)
    return OffsetsInitializer.timestamp(ms) if ms is not None else None


def starting_offsets(spec: str, topics: Sequence[str], reset: Optional[str] = None) -> OffsetsInitializer:
    """earliest | latest | committed | time (ISO-8601 or epoch ms) | [topic:]partition=offset,...

    `reset` (earliest|latest) is where `committed` starts partitions the group has no offset for;
    without it such a partition is an error naming the group, never a silent fallback."""
    if reset is not None and spec != "committed":
        raise ConfigError(f"--reset applies to --from committed, not --from {spec}")
    if spec in ("earliest", "latest"):
        return getattr(OffsetsInitializer, spec)()
    if spec == "committed":
        return OffsetsInitializer.committed(reset=reset)
    initializer = _offsets_or_time(spec, topics, unlisted="earliest")
    if initializer is None:
        raise ConfigError(f"bad --from {spec!r}: use earliest, latest, committed, an ISO-8601 time, "
                          "epoch ms, or [topic:]partition=offset,...")
    return initializer


def stopping_offsets(spec: str, topics: Sequence[str]) -> Optional[OffsetsInitializer]:
    """latest | follow (unbounded) | committed | time | [topic:]partition=offset,..."""
    if spec == "latest":
        return OffsetsInitializer.latest()
    if spec == "follow":
        return None
    if spec == "committed":
        return OffsetsInitializer.committed()
    initializer = _offsets_or_time(spec, topics, unlisted="latest")
    if initializer is None:
        raise ConfigError(f"bad --to {spec!r}: use latest, follow, committed, an ISO-8601 time, "
                          "epoch ms, or [topic:]partition=offset,...")
    return initializer
