"""The records of the Schema Registry benchmark (`fastsource bench --registry`): a 6-field record and a
wide nested one (30 fields with a list, a map and a nested record), as Avro schemas and as Protobuf
messages (`fastsource.benchmark.bench_pb2`), with deterministic, varied contents."""
from __future__ import annotations

import datetime as dt
from typing import Any

EPOCH_MS = 1_700_000_000_000
_UTC = dt.timezone.utc

SMALL_AVRO = {
    "type": "record", "name": "Small", "namespace": "fastsource.bench",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "name", "type": "string"},
        {"name": "amount", "type": "double"},
        {"name": "flag", "type": "boolean"},
        {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "note", "type": ["null", "string"], "default": None},
    ],
}

# 30 fields: scalars of every width, three nullable, an enum, a list, a map and a nested record.
WIDE_AVRO = {
    "type": "record", "name": "Wide", "namespace": "fastsource.bench",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "user_id", "type": "long"},
        {"name": "session", "type": "string"},
        {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "amount", "type": "double"},
        {"name": "price", "type": "float"},
        {"name": "quantity", "type": "int"},
        {"name": "flag", "type": "boolean"},
        {"name": "country", "type": "string"},
        {"name": "city", "type": "string"},
        {"name": "device", "type": "string"},
        {"name": "os", "type": "string"},
        {"name": "browser", "type": "string"},
        {"name": "referrer", "type": ["null", "string"], "default": None},
        {"name": "campaign", "type": ["null", "string"], "default": None},
        {"name": "score", "type": "double"},
        {"name": "rank", "type": "int"},
        {"name": "latency_ms", "type": "long"},
        {"name": "bytes_in", "type": "long"},
        {"name": "bytes_out", "type": "long"},
        {"name": "retries", "type": "int"},
        {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["OK", "WARN", "FAIL"]}},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "metrics", "type": {"type": "map", "values": "double"}},
        {"name": "location", "type": {"type": "record", "name": "Location", "fields": [
            {"name": "lat", "type": "double"}, {"name": "lon", "type": "double"},
            {"name": "accuracy", "type": "float"}, {"name": "source", "type": "string"}]}},
        {"name": "experiment", "type": ["null", "long"], "default": None},
        {"name": "version", "type": "int"},
        {"name": "checksum", "type": "long"},
        {"name": "region", "type": "string"},
        {"name": "active", "type": "boolean"},
    ],
}

_COUNTRIES = ["DE", "FR", "US", "JP", "BR", "IN"]
_CITIES = ["Berlin", "Paris", "Austin", "Osaka", "Recife", "Pune"]
_DEVICES = ["phone", "tablet", "desktop"]
_OSES = ["android", "ios", "linux", "windows", "macos"]
_BROWSERS = ["firefox", "chrome", "safari"]


def small_record(i: int) -> dict[str, Any]:
    """The 6-field record number `i` (as AvroSerializer takes it)."""
    return {"id": i, "name": f"user-{i * 7919 % 100_000}", "amount": (i % 10_000) / 100,
            "flag": i % 3 == 0, "ts": dt.datetime.fromtimestamp((EPOCH_MS + i) / 1000, _UTC),
            "note": None if i % 4 else f"note {i}"}


def wide_record(i: int) -> dict[str, Any]:
    """The wide record number `i` (as AvroSerializer takes it)."""
    return {
        "id": i, "user_id": i * 7919 % 1_000_003, "session": f"s-{i * 31 % 65_536:05x}",
        "ts": dt.datetime.fromtimestamp((EPOCH_MS + i) / 1000, _UTC), "amount": (i % 10_000) / 100,
        "price": (i % 500) / 4, "quantity": i % 17, "flag": i % 2 == 0,
        "country": _COUNTRIES[i % 6], "city": _CITIES[i % 6], "device": _DEVICES[i % 3],
        "os": _OSES[i % 5], "browser": _BROWSERS[i % 3],
        "referrer": None if i % 3 else f"https://example.org/{i % 97}",
        "campaign": None if i % 5 else f"c{i % 11}", "score": i / 7, "rank": i % 1000,
        "latency_ms": i % 2_500, "bytes_in": i * 13 % 1_000_000, "bytes_out": i * 17 % 1_000_000,
        "retries": i % 4, "status": ["OK", "WARN", "FAIL"][0 if i % 10 else 1 + i % 2],
        "tags": [f"t{j}" for j in range(i % 4)], "metrics": {f"m{j}": j * 0.5 + i % 7 for j in range(i % 3 + 1)},
        "location": {"lat": (i % 180) - 90.0, "lon": (i % 360) - 180.0, "accuracy": (i % 50) / 2,
                     "source": "gps" if i % 2 else "ip"},
        "experiment": None if i % 2 else i % 1_000, "version": 3, "checksum": i * 2_654_435_761 % (1 << 62),
        "region": _COUNTRIES[(i + 1) % 6].lower(), "active": i % 5 != 0,
    }


def small_message(cls: Any, i: int) -> Any:
    """The 6-field record number `i` as a `bench_pb2.Small` message."""
    record = small_record(i)
    msg = cls(id=record["id"], name=record["name"], amount=record["amount"], flag=record["flag"])
    msg.ts.FromMilliseconds(EPOCH_MS + i)
    if record["note"] is not None:
        msg.note = record["note"]
    return msg


def wide_message(cls: Any, i: int) -> Any:
    """The wide record number `i` as a `bench_pb2.Wide` message."""
    record = wide_record(i)
    msg = cls()
    for name, value in record.items():
        if name == "ts":
            msg.ts.FromMilliseconds(EPOCH_MS + i)
        elif name == "status":
            msg.status = ["OK", "WARN", "FAIL"].index(value)
        elif name == "tags":
            msg.tags.extend(value)
        elif name == "metrics":
            msg.metrics.update(value)
        elif name == "location":
            for key, part in value.items():
                setattr(msg.location, key, part)
        elif value is not None:
            setattr(msg, name, value)
    return msg
