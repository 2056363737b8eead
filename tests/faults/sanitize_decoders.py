"""Memory-checker fuzz run of the compiled decoders (a script, not collected by pytest): valid, mutated and
random payloads behind valid headers for the Avro decoder (plain, framed, and resolving writer versions),
the Protobuf decoder (bare and framed, every field kind) and the JSON pre-scan `_json.json_lines`. Run it
on extensions built with AddressSanitizer + UndefinedBehaviorSanitizer: an out-of-bounds read or write,
a use after free or undefined behaviour then stops the process with a report; the script itself checks
that each batch decodes to a valid array of its length or fails at one of its rows, and counts inputs.
The builders keep released blocks in a pool for later batches; under AddressSanitizer a pooled block
is poisoned (fastsource/includes/asan_poison.h), so a use after Arrow released it is still reported.

Commands (from the repository root; the sanitized build replaces the normal one in place):

    rm -rf build && CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -O1 -g" \\
        LDFLAGS="-fsanitize=address,undefined" .venv/bin/python setup.py build_ext --inplace --force
    export LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)"
    export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:detect_stack_use_after_return=1
    export UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_stacktrace=1
    export PYTHONMALLOC=malloc   # Python's objects in malloc'ed blocks, so ASan sees them too
    .venv/bin/python tests/faults/sanitize_decoders.py all --seconds 600
    .venv/bin/pytest -s -q tests/unit/test_avro.py tests/unit/test_protobuf.py   # -s: reports on stderr

Leaks: the same build with ASAN_OPTIONS=detect_leaks=1:abort_on_error=1; LeakSanitizer lists the
unreachable blocks at exit (CPython's and other extensions' own exit-time blocks among them, so the exit
status is not 0); the blocks of fastsource's compiled units are those with a `fastsource/` frame:

    ASAN_OPTIONS=detect_leaks=1 .venv/bin/python tests/faults/sanitize_decoders.py all --count 20000 \\
        2>&1 | grep -A14 "leak of" | grep -c "fastsource/"          # 0: no leak of ours

Without the sanitizers, valgrind on a normal build (unset LD_PRELOAD first):

    .venv/bin/python setup.py build_ext --inplace --force     # back to the normal build
    PYTHONMALLOC=malloc valgrind --leak-check=full --show-leak-kinds=definite \\
        .venv/bin/python tests/faults/sanitize_decoders.py all --count 2000 2>&1 | grep -A14 "definitely lost in" \\
        | grep -c "fastsource/"                                   # 0: no leak of ours

Usage: sanitize_decoders.py {avro,avro-framed,avro-resolve,protobuf,protobuf-framed,json,all}
[--seconds S | --count N] [--seed K]
"""
from __future__ import annotations

import argparse
import io
import json
import random
import struct
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import pyarrow as pa

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "unit"))

from fastsource.formats import _json  # noqa: E402
from fastsource.formats import RecordDecodeError  # noqa: E402
from test_avro import EVERY_TYPE  # noqa: E402

# Every Avro type and logical type (test_avro's schema), and more nesting: unions holding arrays, maps
# of arrays of unions, fixed of size 0, arrays of nulls and of empty records, a 38-digit decimal.
AVRO_EVERY = {**EVERY_TYPE, "fields": EVERY_TYPE["fields"] + [
    {"name": "f0", "type": {"type": "fixed", "name": "F0", "size": 0}},
    {"name": "u2", "type": ["null", "F4", {"type": "array", "items": "Color"}]},
    {"name": "mm", "type": {"type": "map", "values": {"type": "array", "items": ["null", "F4", "Sub"]}}},
    {"name": "nulls", "type": {"type": "array", "items": "null"}},
    {"name": "empties", "type": {"type": "array", "items": {"type": "record", "name": "Empty", "fields": []}}},
    {"name": "dec38", "type": {"type": "bytes", "logicalType": "decimal", "precision": 38, "scale": 2}}]}

# A writer version and the reader it resolves into: promotions, a dropped field (skipped), an enum
# default, union branches, and reader fields filled from defaults (strings, arrays, records, maps).
AVRO_WRITER = {"type": "record", "name": "User", "namespace": "app", "fields": [
    {"name": "id", "type": "int"}, {"name": "score", "type": "float"}, {"name": "n", "type": "long"},
    {"name": "fx", "type": {"type": "fixed", "name": "F2", "size": 2}},
    {"name": "gone", "type": {"type": "array", "items": {"type": "map", "values": ["null", "string", "F2"]}}},
    {"name": "tier", "type": {"type": "enum", "name": "Tier", "symbols": ["FREE", "PRO", "LEGACY"]}},
    {"name": "blob", "type": "string"}, {"name": "raw", "type": "bytes"},
    {"name": "ref", "type": ["null", "long", "float"]},
    {"name": "items", "type": {"type": "array", "items": {"type": "record", "name": "It", "fields": [
        {"name": "k", "type": "int"}]}}}]}
AVRO_READER = {"type": "record", "name": "User", "namespace": "app", "fields": [
    {"name": "id", "type": "long"}, {"name": "score", "type": "double"}, {"name": "n", "type": "float"},
    {"name": "tier", "type": {"type": "enum", "name": "Tier", "symbols": ["FREE", "PRO", "GOLD"],
                              "default": "FREE"}},
    {"name": "blob", "type": "bytes"}, {"name": "raw", "type": "string"},
    {"name": "ref", "type": ["null", "long", "double", "string"]},
    {"name": "email", "type": ["null", "string"], "default": None},
    {"name": "tags", "type": {"type": "array", "items": "string"}, "default": ["new", "x" * 40]},
    {"name": "home", "type": {"type": "record", "name": "Addr", "fields": [
        {"name": "city", "type": "string"}, {"name": "zip", "type": "int"}]},
     "default": {"city": "Paris", "zip": 75001}},
    {"name": "items", "type": {"type": "array", "items": {"type": "record", "name": "It", "fields": [
        {"name": "k", "type": "long"}, {"name": "label", "type": "string", "default": "none"},
        {"name": "attrs", "type": {"type": "map", "values": "int"}, "default": {"a": 1}}]}}}]}

# Byte sequences that stress a decoder where they land: varints of 10 and 11 bytes, the extreme zigzag
# values, negative and huge lengths and counts, field number 0, end-groups, invalid UTF-8.
POISON = [b"\xff" * 9 + b"\x01", b"\xff" * 10 + b"\x01", b"\x80" * 10, b"\x80" * 9 + b"\x00",
          b"\xfe\xff\xff\xff\xff\xff\xff\xff\xff\x01", b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",
          b"\x01", b"\x03", b"\x7f", b"\xfe\xff\xff\xff\x0f", b"\xff\xff\xff\xff\x0f", b"\x80\x80\x04",
          b"\x80\x80\x08", b"\x00", b"\x04", b"\x0c", b"\x0b", b"\x0f", b"\x1c", b"\x07", b"\xc0\x80", b"\xed\xa0\x80",
          b"\xf4\x90\x80\x80", b"\xff", b"\x02\x00"]


class Counter:
    """Inputs given to each decoder, and how many of them it accepted."""

    def __init__(self) -> None:
        self.inputs: dict[str, int] = {}
        self.accepted: dict[str, int] = {}

    def add(self, name: str, inputs: int, accepted: int) -> None:
        self.inputs[name] = self.inputs.get(name, 0) + inputs
        self.accepted[name] = self.accepted.get(name, 0) + accepted


# --- random valid values ----------------------------------------------------------------------------

def avro_value(rng: random.Random, schema: Any, names: dict, depth: int = 0) -> Any:
    """A random value of an Avro schema (fastavro's Python form)."""
    if isinstance(schema, str):
        if schema in names:
            return avro_value(rng, names[schema], names, depth)
        return avro_value(rng, {"type": schema}, names, depth)
    if isinstance(schema, list):
        return avro_value(rng, rng.choice(schema), names, depth)
    kind, logical = schema["type"], schema.get("logicalType")
    if isinstance(kind, (dict, list)):
        return avro_value(rng, kind, names, depth)
    small = depth > 2
    if logical == "decimal":
        import decimal

        digits = rng.randint(0, schema["precision"])
        unscaled = rng.randint(1 - 10 ** digits, 10 ** digits - 1)
        return decimal.Decimal(unscaled).scaleb(-schema["scale"], decimal.Context(prec=80))
    if logical == "uuid":
        import uuid

        return str(uuid.UUID(int=rng.getrandbits(128)))
    if logical in ("time-millis", "time-micros"):  # a time of day
        return rng.randrange(86_400_000 if logical == "time-millis" else 86_400_000_000)
    if logical == "date" or (logical or "").startswith(("timestamp", "local")):
        return rng.randint(-2 ** 31, 2 ** 31 - 1) if kind == "int" else rng.randint(-2 ** 40, 2 ** 40)
    if kind == "null":
        return None
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "int":
        return rng.choice([0, -1, 2 ** 31 - 1, -2 ** 31, rng.randint(-2 ** 31, 2 ** 31 - 1)])
    if kind == "long":
        return rng.choice([0, -1, 2 ** 63 - 1, -2 ** 63, rng.randint(-2 ** 63, 2 ** 63 - 1)])
    if kind in ("float", "double"):
        return rng.choice([0.0, -1.5, float("inf"), rng.uniform(-1e9, 1e9)])
    if kind == "string":
        return "".join(rng.choice("ab\u00e9\u2713\U0001f600z") for _ in range(rng.randint(0, 3 if small else 12)))
    if kind == "bytes":
        return rng.randbytes(rng.randint(0, 3 if small else 20))
    if kind == "fixed":
        return rng.randbytes(schema["size"])
    if kind == "enum":
        return rng.choice(schema["symbols"])
    if kind == "array":
        return [avro_value(rng, schema["items"], names, depth + 1) for _ in range(rng.randint(0, 1 if small else 4))]
    if kind == "map":
        return {f"k{j}\u00e9": avro_value(rng, schema["values"], names, depth + 1)
                for j in range(rng.randint(0, 1 if small else 3))}
    if kind == "record":
        return {f["name"]: avro_value(rng, f["type"], names, depth + 1) for f in schema["fields"]}
    raise ValueError(kind)


def named_types(schema: Any, names: dict) -> dict:
    """Every named type of a schema by its short name (the schemas here use each name once)."""
    if isinstance(schema, list):
        for branch in schema:
            named_types(branch, names)
    elif isinstance(schema, dict):
        if "name" in schema and schema.get("type") in ("record", "enum", "fixed"):
            names[schema["name"]] = schema
        for key in ("type", "items", "values"):
            named_types(schema.get(key), names)
        for field in schema.get("fields", []):
            named_types(field["type"], names)
    return names


def avro_seeds(rng: random.Random, schema: dict, count: int) -> list[bytes]:
    import fastavro

    parsed = fastavro.parse_schema(json.loads(json.dumps(schema)))
    names = named_types(schema, {})
    seeds = []
    for _ in range(count):
        out = io.BytesIO()
        fastavro.schemaless_writer(out, parsed, avro_value(rng, schema, names))
        seeds.append(out.getvalue())
    return seeds


def protobuf_seeds(rng: random.Random, pb: Any, count: int) -> list[bytes]:
    seeds = []
    for _ in range(count):
        m = pb.All()
        for name in ("d", "f"):
            if rng.random() < 0.5:
                setattr(m, name, rng.uniform(-1e6, 1e6))
        for name, bits in (("i64", 63), ("i32", 31), ("sf32", 31), ("sf64", 63), ("si32", 31), ("si64", 63)):
            if rng.random() < 0.5:
                setattr(m, name, rng.randint(-2 ** bits, 2 ** bits - 1))
        for name, bits in (("u64", 64), ("f64", 64), ("f32", 32), ("u32", 32)):
            if rng.random() < 0.5:
                setattr(m, name, rng.randint(0, 2 ** bits - 1))
        if rng.random() < 0.5:
            m.b = True
        if rng.random() < 0.7:
            m.s = "".join(rng.choice("ab\u00e9\u2713\U0001f600") for _ in range(rng.randint(0, 10)))
        if rng.random() < 0.5:
            m.by = rng.randbytes(rng.randint(0, 10))
        m.c = rng.choice([0, 1, 5, -3])
        if rng.random() < 0.6:
            m.inner.x = rng.randint(-9, 9)
            m.inner.ys.extend(["y" * j for j in range(rng.randint(0, 3))])
        for _ in range(rng.randint(0, 3)):
            m.inners.add(x=rng.randint(-5, 5), ys=["q"])
        m.nums.extend(rng.randint(-2 ** 63, 2 ** 63 - 1) for _ in range(rng.randint(0, 5)))
        m.strs.extend("s" * j for j in range(rng.randint(0, 3)))
        for j in range(rng.randint(0, 3)):
            m.m[f"k{j}"] = rng.randint(-5, 5)
            m.mi[j].x = j
        if rng.random() < 0.5:
            if rng.random() < 0.5:
                m.cs = "c"
            else:
                m.ci = rng.randint(-9, 9)
        if rng.random() < 0.5:
            m.opt = rng.randint(-9, 9)
        if rng.random() < 0.5:
            m.ts.seconds, m.ts.nanos = rng.randint(-2 ** 34, 2 ** 34), rng.randint(0, 999_999_999)
        if rng.random() < 0.5:
            m.dur.seconds, m.dur.nanos = rng.randint(-2 ** 34, 2 ** 34), 0
        if rng.random() < 0.5:
            m.w64.value = rng.randint(-2 ** 63, 2 ** 63 - 1)
        if rng.random() < 0.5:
            m.ws.value = "w" * rng.randint(0, 4)
        if rng.random() < 0.5:
            m.wb.value = rng.random() < 0.5
        m.colors.extend(rng.choice([0, 1, 5, -3]) for _ in range(rng.randint(0, 4)))
        m.ds.extend(rng.uniform(-1, 1) for _ in range(rng.randint(0, 3)))
        if rng.random() < 0.5:
            m.deep.inner.x = 1
        seeds.append(m.SerializeToString())
    return seeds


def varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def protobuf_nasties(rng: random.Random) -> bytes:
    """Hand-made Protobuf wire: unknown fields of every wire type, groups nested past any max_depth,
    field number 0, end-groups without a start, packed runs cut short, repeated singular fields."""
    choice = rng.randrange(8)
    if choice == 0:
        depth = rng.choice([1, 10, 63, 64, 65, 249, 250, 251, 1000, 5000])
        return b"\x9b\x06" * depth + b"\x9c\x06" * rng.randint(0, depth)  # field 99 groups
    if choice == 1:
        return varint((rng.choice([1, 2, 40, 99, 536870911]) << 3) | rng.randrange(8)) + rng.randbytes(rng.randint(0, 12))
    if choice == 2:  # packed repeated int64 (22) / colors (32) / doubles (35) with lengths off by a little
        tag = rng.choice([b"\xb2\x01", b"\x82\x02", b"\x9a\x02"])
        body = rng.randbytes(rng.randint(0, 16))
        return tag + bytes([min(127, max(0, len(body) + rng.randint(-3, 3)))]) + body
    if choice == 3:  # a oneof set both ways, a message field twice, a singular field many times
        return rng.choice([b"\xd2\x01\x01a\xd8\x01\x05\xd2\x01\x00", b"\xa2\x01\x02\x08\x01\xa2\x01\x00",
                           b"\x08\x01" * 50, b"J\x01aJ\x02bb" * 10, b"\xa2\x02\x04\x0a\x02\x08\x01" * 3])
    if choice == 4:  # Timestamp / Duration / wrappers with out-of-range or strange contents
        tag = rng.choice([b"\xea\x01", b"\x8a\x02", b"\xf2\x01", b"\xfa\x01", b"\x92\x02"])
        body = rng.choice([b"\x08\xff\xff\xff\xff\xff\xff\xff\xff\x7f", b"\x10\xff\xff\xff\xff\x0f",
                           b"\x08\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01", b"\x0a\x03abc", b"\x08\x01\x08\x02",
                           b"\x0b\x0c", b"\x00", rng.randbytes(rng.randint(0, 8))])
        return tag + bytes([len(body)]) + body
    if choice == 5:
        return b"\x00" + rng.randbytes(rng.randint(0, 8))  # field number 0
    if choice == 6:  # deeply nested length-delimited messages: Deep(36) -> Inner(1)
        inner = b"\x08\x01"
        for _ in range(rng.randint(1, 4)):
            inner = b"\x0a" + bytes([len(inner)]) + inner
        return b"\xa2\x02" + bytes([len(inner)]) + inner
    return rng.choice(POISON) * rng.randint(1, 40)


def json_seeds(rng: random.Random, count: int) -> list[bytes]:
    def value(depth: int) -> Any:
        k = rng.randrange(8 if depth < 6 else 5)
        if k == 0:
            return None
        if k == 1:
            return rng.random() < 0.5
        if k == 2:
            return rng.randint(-2 ** 70, 2 ** 70)
        if k == 3:
            return rng.uniform(-1e300, 1e300)
        if k == 4:
            return "".join(rng.choice('ab"\\/\n\t\u00e9\u2713\U0001f600{}[] \x01') for _ in range(rng.randint(0, 40)))
        if k == 5:
            return [value(depth + 1) for _ in range(rng.randint(0, 4))]
        return {f"k{j}{'{'*j}": value(depth + 1) for j in range(rng.randint(0, 4))}

    seeds = []
    for _ in range(count):
        text = json.dumps({f"f{j}": value(1) for j in range(rng.randint(0, 6))},
                          ensure_ascii=rng.random() < 0.3, indent=rng.choice([None, None, 1]))
        seeds.append(text.encode())
    seeds += [b"null", b" null \n", b"{}", b"{" * 100 + b"}" * 100, b"[" * 70, b'{"a":"\\', b'{"a":"\\u12"}']
    return seeds


# --- mutations --------------------------------------------------------------------------------------

def mutate(rng: random.Random, seeds: list[bytes], keep: int) -> bytes:
    """A seed changed after its first `keep` bytes (the header): cut, bits flipped, bytes replaced or
    inserted, a poison sequence spliced in, a region repeated, two seeds joined, or random bytes."""
    value = bytearray(rng.choice(seeds))
    for _ in range(rng.choice([1, 1, 1, 2, 3, 6])):
        at = rng.randint(min(keep, len(value)), len(value))
        action = rng.randrange(9)
        if action == 0:
            del value[at:]
        elif action == 1 and at < len(value):
            value[at] ^= 1 << rng.randrange(8)
        elif action == 2 and at < len(value):
            value[at] = rng.randrange(256)
        elif action == 3:
            value[at:at] = rng.randbytes(rng.randint(1, 4))
        elif action == 4:
            piece = rng.choice(POISON)
            value[at:at + (len(piece) if rng.random() < 0.5 else 0)] = piece
        elif action == 5:
            end = rng.randint(at, len(value))
            value[at:at] = value[at:end] * rng.randint(1, 8)
        elif action == 6:
            other = rng.choice(seeds)
            value[at:] = other[rng.randint(min(keep, len(other)), len(other)):]
        elif action == 7:
            del value[at:at + rng.randint(1, 4)]
        else:
            value[keep:] = rng.randbytes(rng.choice([0, 1, 2, 3, 5, 9, 17, 31, 32, 33, 64, 300]))
    return bytes(value)


# --- one decoder under the fuzz ---------------------------------------------------------------------

class Target:
    """A decoder: its name, its seed payloads, its header length, and its batch call."""

    def __init__(self, name: str, seeds: list[bytes], keep: int, decode: Callable[[pa.Array], Any],
                 extra: Optional[Callable[[random.Random], bytes]] = None, header: bytes = b"") -> None:
        self.name, self.seeds, self.keep, self.decode, self.extra, self.header = name, seeds, keep, decode, extra, header

    def payloads(self, rng: random.Random, n: int) -> list[Optional[bytes]]:
        out: list[Optional[bytes]] = []
        for _ in range(n):
            k = rng.random()
            if k < 0.03:
                out.append(None)
            elif k < 0.1:
                out.append(rng.choice(self.seeds))
            elif k < 0.2 and self.extra is not None:
                out.append(self.header + self.extra(rng))
            elif k < 0.22:  # not even the header (a short one, or one whose magic byte is not 0)
                out.append(rng.randbytes(rng.randint(0, 4)) if rng.random() < 0.5 else b"\x01" + rng.randbytes(8))
            else:
                out.append(mutate(rng, self.seeds, self.keep))
        return out


def run_batch(target: Target, payloads: list[Optional[bytes]], rng: random.Random) -> int:
    """Decode a batch as the emitter does, past each bad row; every result must be a valid array of
    the rows given. Returns the number of rows accepted."""
    raw = pa.array(payloads, pa.binary())
    if rng.random() < 0.2:  # a large_binary batch, or a slice: the decoders' offsets must follow
        raw = raw.cast(pa.large_binary()) if rng.random() < 0.5 else raw
    start, accepted = 0, 0
    while start < len(payloads):
        part = raw.slice(start)
        try:
            out = target.decode(part)
        except RecordDecodeError as exc:
            assert 0 <= exc.row < len(part), (target.name, exc.row, len(part))
            assert payloads[start + exc.row] is not None, "a null record was called undecodable"
            accepted += exc.row
            start += exc.row + 1
            continue
        if isinstance(out, pa.Array):
            assert len(out) == len(part), (target.name, len(out), len(part))
            out.validate(full=True)
        accepted += len(part)
        break
    return accepted


def json_decode(raw: pa.Array) -> Any:
    if pa.types.is_large_binary(raw.type):
        raw = raw.cast(pa.binary())
    buffer, longest, mask, bad = _json.json_lines(raw, 16)
    if bad is not None:
        raise RecordDecodeError(bad[0], f"problem {bad[1]} at byte {bad[2]}")
    assert buffer.size >= len(raw) * 3 and longest >= 0
    if mask is not None:
        assert len(mask) == len(raw)
    return None


def targets(names: list[str], rng: random.Random) -> Iterator[Target]:
    if "avro" in names or "avro-framed" in names or "avro-resolve" in names:
        from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

        from fastsource.formats.avro import Avro
        client = SchemaRegistryClient.new_client({"url": "mock://sanitize"})
    if "avro" in names:
        fmt = Avro(schema=AVRO_EVERY, errors="raise")
        yield Target("avro", avro_seeds(rng, AVRO_EVERY, 300), 0, fmt.decode)
    if "avro-framed" in names:
        sid = client.register_schema("every-value", Schema(json.dumps(AVRO_EVERY), "AVRO"))
        header = b"\x00" + struct.pack(">I", sid)
        fmt = Avro(client, errors="raise").bind(["every"], False, 1000)
        yield Target("avro-framed", [header + s for s in avro_seeds(rng, AVRO_EVERY, 300)], 5, fmt.decode,
                     header=header)
    if "avro-resolve" in names:
        wid = client.register_schema("users-value", Schema(json.dumps(AVRO_WRITER), "AVRO"))
        client.register_schema("users-value", Schema(json.dumps(AVRO_READER), "AVRO"))
        header = b"\x00" + struct.pack(">I", wid)
        fmt = Avro(client, errors="raise").bind(["users"], False, 1000)
        yield Target("avro-resolve", [header + s for s in avro_seeds(rng, AVRO_WRITER, 300)], 5, fmt.decode,
                     header=header)
    if "protobuf" in names or "protobuf-framed" in names:
        from protobuf_fixtures import framed, messages

        from fastsource.formats.protobuf import Protobuf
        pb = messages()
        seeds = protobuf_seeds(rng, pb, 300)
    if "protobuf" in names:
        for depth in (64, 250):
            fmt = Protobuf(pb.All, errors="raise", max_depth=depth)
            yield Target(f"protobuf(max_depth={depth})", seeds, 0, fmt.decode, extra=protobuf_nasties)
    if "protobuf-framed" in names:
        from confluent_kafka.schema_registry import SchemaRegistryClient
        from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
        from confluent_kafka.serialization import MessageField, SerializationContext

        client = SchemaRegistryClient.new_client({"url": "mock://sanitize-pb"})
        serializer = ProtobufSerializer(pb.All, client, {"use.deprecated.format": False})
        framed_one = serializer(pb.All(s="x"), SerializationContext("pbt", MessageField.VALUE))
        header = framed_one[:5]
        indexes = [b"\x00", b"\x02\x04", b"\x04\x02\x00", b"\x01", b"\x03\x02", b"\x7f", b"\x02\xff\xff\xff\xff\x0f"]
        framed_seeds = [framed(struct.unpack(">I", header[1:])[0], s, rng.choice(indexes)) for s in seeds]
        fmt = Protobuf(pb.All, schema_registry=client, errors="raise").bind(["pbt"], False, 1000)
        yield Target("protobuf-framed", framed_seeds, 5, fmt.decode, header=header,
                     extra=lambda r: rng.choice(indexes) + protobuf_nasties(r))
    if "json" in names:
        yield Target("json_lines", json_seeds(rng, 300), 0, json_decode,
                     extra=lambda r: r.randbytes(r.randint(0, 100)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("which", choices=["avro", "avro-framed", "avro-resolve", "protobuf", "protobuf-framed",
                                          "json", "all"])
    parser.add_argument("--seconds", type=float, default=None, help="run each decoder this long")
    parser.add_argument("--count", type=int, default=20000, help="inputs per decoder (without --seconds)")
    parser.add_argument("--seed", type=int, default=17)
    args = parser.parse_args()
    names = ["avro", "avro-framed", "avro-resolve", "protobuf", "protobuf-framed", "json"] \
        if args.which == "all" else [args.which]
    rng = random.Random(args.seed)
    counter = Counter()
    for target in targets(names, rng):
        deadline = time.monotonic() + args.seconds if args.seconds else None
        done = 0
        while (deadline is None and done < args.count) or (deadline is not None and time.monotonic() < deadline):
            n = rng.choice([1, 8, 64, 256])
            payloads = target.payloads(rng, n)
            counter.add(target.name, n, run_batch(target, payloads, rng))
            done += n
        print(f"{target.name}: {counter.inputs[target.name]} inputs, {counter.accepted[target.name]} accepted",
              flush=True)
    print("total:", sum(counter.inputs.values()), "inputs; ok", flush=True)


if __name__ == "__main__":
    main()
