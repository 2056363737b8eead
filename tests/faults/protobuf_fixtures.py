"""Protobuf test messages, generated at test time from a .proto with grpcio-tools, and protobuf's own
reading of a payload in the form fastsource's columns take (field by field from the parsed message)."""
from __future__ import annotations

import datetime
import importlib
import struct
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Optional

PROTO = """
syntax = "proto3";
package fstest;
import "google/protobuf/timestamp.proto";
import "google/protobuf/duration.proto";
import "google/protobuf/wrappers.proto";

enum Color { RED = 0; GREEN = 1; BLUE = 5; NEG = -3; }
message Inner { int32 x = 1; repeated string ys = 2; }
message Deep { Inner inner = 1; }
message All {
  double d = 1; float f = 2; int64 i64 = 3; uint64 u64 = 4; int32 i32 = 5; fixed64 f64 = 6; fixed32 f32 = 7;
  bool b = 8; string s = 9; bytes by = 12; uint32 u32 = 13; Color c = 14; sfixed32 sf32 = 15;
  sfixed64 sf64 = 16; sint32 si32 = 17; sint64 si64 = 18;
  Inner inner = 20; repeated Inner inners = 21; repeated int64 nums = 22; repeated string strs = 23;
  map<string, int64> m = 24; map<int32, Inner> mi = 25;
  oneof choice { string cs = 26; int32 ci = 27; }
  optional int32 opt = 28;
  google.protobuf.Timestamp ts = 29; google.protobuf.Duration dur = 33;
  google.protobuf.Int64Value w64 = 30; google.protobuf.StringValue ws = 31; google.protobuf.BoolValue wb = 34;
  repeated Color colors = 32; repeated double ds = 35; Deep deep = 36;
}
message Recursive { Recursive next = 1; }
"""

_MODULE: Any = None


def messages() -> Any:
    """The generated module of PROTO (compiled once per process)."""
    global _MODULE
    if _MODULE is None:
        from grpc_tools import protoc
        import grpc_tools

        out = Path(tempfile.mkdtemp(prefix="fastsource-proto-"))
        (out / "fstest.proto").write_text(PROTO)
        include = str(Path(grpc_tools.__file__).parent / "_proto")
        status = protoc.main(["protoc", f"-I{out}", f"-I{include}", f"--python_out={out}", str(out / "fstest.proto")])
        assert status == 0, "protoc failed"
        sys.path.insert(0, str(out))
        _MODULE = importlib.import_module("fstest_pb2")
    return _MODULE


def as_row(message: Any) -> dict:
    """A parsed message as fastsource decodes it: every field, absent ones as protobuf defines them
    (null where the field has presence), enums by name, times as integer nanoseconds, maps as dicts."""
    row = {}
    for field in message.DESCRIPTOR.fields:
        value = getattr(message, field.name)
        repeated = field.is_repeated if hasattr(field, "is_repeated") else field.label == field.LABEL_REPEATED
        sub = field.message_type
        if repeated and sub is not None and sub.GetOptions().map_entry:
            value_field = sub.fields_by_name["value"]
            row[field.name] = {k: as_row(v) if value_field.message_type is not None else v for k, v in value.items()}
        elif repeated:
            row[field.name] = [as_value(field, v) for v in value]
        elif (sub is not None or field.has_presence) and not message.HasField(field.name):
            row[field.name] = None
        else:
            row[field.name] = as_value(field, value)
    return row


def as_value(field: Any, value: Any) -> Any:
    sub = field.message_type
    if sub is None:
        if field.enum_type is not None:
            return field.enum_type.values_by_number[value].name
        return value
    if sub.full_name in ("google.protobuf.Timestamp", "google.protobuf.Duration"):
        return value.seconds * 1_000_000_000 + value.nanos
    if sub.full_name.startswith("google.protobuf.") and sub.full_name.endswith("Value"):
        return value.value
    return as_row(value)


def fix_row(row: Any) -> Any:
    """fastsource's row with its times as integer nanoseconds (to_pylist gives pandas objects)."""
    if isinstance(row, dict):
        return {k: fix_row(v) for k, v in row.items()}
    if isinstance(row, list):
        return [fix_row(v) for v in row]
    if isinstance(row, tuple):
        return tuple(fix_row(v) for v in row)
    if hasattr(row, "value") and type(row).__name__ in ("Timestamp", "Timedelta"):
        return row.value
    if isinstance(row, datetime.datetime):
        return int(row.timestamp()) * 1_000_000_000 + row.microsecond * 1000
    if isinstance(row, datetime.timedelta):
        return (row.days * 86400 + row.seconds) * 1_000_000_000 + row.microseconds * 1000
    return row


def fuzz_case() -> tuple[Callable[[str], Any], Any, Callable[[dict], bytes], Callable[[bytes], Optional[dict]]]:
    """(make format, strategy of records, encode, protobuf's reading or None) for the fuzz script."""
    from hypothesis import strategies as st

    from fastsource.formats.protobuf import Protobuf

    pb = messages()
    records = st.fixed_dictionaries({}, optional={
        "i64": st.integers(-2 ** 63, 2 ** 63 - 1), "u32": st.integers(0, 2 ** 32 - 1),
        "si32": st.integers(-2 ** 31, 2 ** 31 - 1), "s": st.text(max_size=10), "by": st.binary(max_size=6),
        "d": st.floats(allow_nan=False), "b": st.booleans(), "c": st.sampled_from(["RED", "GREEN", "BLUE", "NEG"]),
        "nums": st.lists(st.integers(-2 ** 63, 2 ** 63 - 1), max_size=4),
        "strs": st.lists(st.text(max_size=4), max_size=3),
        "m": st.dictionaries(st.text(max_size=3), st.integers(-5, 5), max_size=3),
        "inner": st.fixed_dictionaries({"x": st.integers(-9, 9), "ys": st.lists(st.text(max_size=2), max_size=2)}),
        "cs": st.text(max_size=3), "opt": st.integers(-9, 9)})

    def encode(record: dict) -> bytes:
        return pb.All(**record).SerializeToString()

    def reference(payload: bytes) -> Optional[dict]:
        try:
            message = pb.All.FromString(payload)
        except Exception:  # protobuf's DecodeError, or a ValueError for an unknown enum name
            return None
        try:
            return as_row(message)
        except (KeyError, ValueError):  # an enum number the enum does not name
            return None

    return (lambda errors: Protobuf(pb.All, errors=errors)), records, encode, reference


def framed(schema_id: int, payload: bytes, indexes: bytes = b"\x00") -> bytes:
    """Confluent's Protobuf wire format: magic byte, id, message-index array, message."""
    return b"\x00" + struct.pack(">I", schema_id) + indexes + payload
