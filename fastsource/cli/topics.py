"""`fastsource topics` and `fastsource lag`: a cluster's topics, partitions, records and a consumer
group's lag at a glance, through the admin client the enumerator uses."""
from __future__ import annotations

import argparse
import datetime as dt
import sys
from typing import Any, Optional

from fastsource.cli.common import bootstrap_servers, client_properties
from fastsource.errors import ConfigError, UnknownTopicError
from fastsource.kafka.admin import KafkaAdmin


def _admin(args: argparse.Namespace) -> KafkaAdmin:
    return KafkaAdmin(bootstrap_servers(args), client_properties(args.property), timeout_s=args.timeout)


def _time(ms: int) -> Optional[str]:
    if ms is None or ms < 0:
        return None
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _emit(args: argparse.Namespace, rows: list[dict[str, Any]], columns: list[str],
          right: list[str]) -> str:
    """Print `rows` as JSON lines or a table (the default on a terminal); returns which."""
    from fastsource.cli.console import print_jsonl, print_table

    style = args.console_format or ("table" if sys.stdout.isatty() else "jsonl")
    if style == "jsonl":
        print_jsonl(rows)
    else:
        print_table(rows, columns, right=right)
    return style


def _existing(admin: KafkaAdmin, wanted: Optional[list[str]]) -> dict[str, int]:
    topics = admin.topics(wanted=(lambda name: True) if wanted is None else set(wanted).__contains__)
    if wanted is None:
        return topics
    missing = [t for t in wanted if t not in topics]
    if missing:
        raise UnknownTopicError(f"topic(s) not found on {admin.bootstrap_servers}: {', '.join(missing)}")
    return {t: topics[t] for t in wanted}


def topics(args: argparse.Namespace) -> int:
    """Without -t: every topic with its partition count and records (high minus low offsets, summed).
    With -t: per partition low, high, records, the first record's timestamp and the largest one."""
    admin = _admin(args)
    chosen = _existing(admin, args.topic)
    partitions = [(t, p) for t, n in sorted(chosen.items()) for p in range(n)]
    low = admin.list_offsets(partitions, "earliest")
    high = admin.list_offsets(partitions, "latest")
    if not args.topic:
        rows = []
        for name, count in sorted(chosen.items()):
            records = sum(high[(name, p)] - low[(name, p)] for p in range(count))
            rows.append({"topic": name, "partitions": count, "records": records})
        _emit(args, rows, ["topic", "partitions", "records"], ["partitions", "records"])
        return 0
    first = admin.offsets_and_timestamps(partitions, 0)
    newest = admin.offsets_and_timestamps(partitions, "max_timestamp")
    rows = []
    for tp in partitions:
        empty = high[tp] <= low[tp]
        rows.append({"topic": tp[0], "partition": tp[1], "low": low[tp], "high": high[tp],
                     "records": high[tp] - low[tp],
                     "first_timestamp": None if empty else _time(first[tp][1]),
                     "max_timestamp": None if empty else _time(newest[tp][1])})
    _emit(args, rows, ["topic", "partition", "low", "high", "records", "first_timestamp", "max_timestamp"],
          ["partition", "low", "high", "records"])
    return 0


def lag(args: argparse.Namespace) -> int:
    """Per partition of a consumer group: its committed offset, the high watermark and the lag
    (high minus committed; "-" where the group has committed nothing)."""
    admin = _admin(args)
    if args.topic:
        chosen = _existing(admin, args.topic)
        committed = admin.committed(args.group, [(t, p) for t, n in chosen.items() for p in range(n)])
    else:
        committed = admin.committed(args.group, None)
        if not committed:
            raise ConfigError(f"group {args.group!r} has no committed offsets on "
                              f"{admin.bootstrap_servers} (name topics with -t to see their lag)")
    partitions = sorted(committed)
    high = admin.list_offsets(partitions, "latest")
    rows = []
    for tp in partitions:
        offset = committed[tp]
        rows.append({"topic": tp[0], "partition": tp[1], "committed": offset, "high": high[tp],
                     "lag": None if offset is None else high[tp] - offset})
    style = _emit(args, rows, ["topic", "partition", "committed", "high", "lag"],
                  ["partition", "committed", "high", "lag"])
    if style == "table":
        print(f"total lag: {sum(r['lag'] or 0 for r in rows):,}")
    return 0
