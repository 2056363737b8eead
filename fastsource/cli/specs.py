"""Command-line offset specs (`--from`, `--to`) turned into offsets initializers."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Optional, Sequence

from fastsource.errors import ConfigError
from fastsource.enumerator.offsets import OffsetsInitializer


def parse_time_ms(text: str) -> Optional[int]:
    """Epoch milliseconds from digits or an ISO-8601 time (naive times are UTC); None if neither."""
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000)


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


def starting_offsets(spec: str, topics: Sequence[str]) -> OffsetsInitializer:
    """earliest | latest | committed | time (ISO-8601 or epoch ms) | [topic:]partition=offset,..."""
    if spec in ("earliest", "latest"):
        return getattr(OffsetsInitializer, spec)()
    if spec == "committed":
        return OffsetsInitializer.committed(reset="earliest")
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
