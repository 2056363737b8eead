"""Avro, plain or in Confluent's wire format with a Schema Registry, decoded by the compiled core.

Python parses schemas (fastavro) and turns each writer schema, resolved against the reader schema,
into a decode plan once: a flat program of int32 words (the opcodes of `_avro.pyx`) plus the encoded
default values of fields the writer lacks. `_avro.decode` runs the plans over a whole batch with the
GIL released, appending into one column builder per node of the reader schema's Arrow type.
"""
from __future__ import annotations

import copy
import json
import struct
import threading
from typing import Any, Optional, Sequence, Union

import pyarrow as pa

from fastsource.errors import ConfigError
from fastsource.formats import Format, RecordDecodeError, as_binary
from fastsource.formats import _avro, _wire
from fastsource.formats._builders import LAYOUT_FIELDS, BatchLayout, string_array  # noqa: F401  (LAYOUT_FIELDS documents the layout tuples)

OP = _avro.OPCODES
ERR = _avro.ERRORS
NODE_NULL, NODE_BOOL, NODE_FIXED, NODE_BINARY, NODE_STRUCT, NODE_LIST, NODE_UNION = range(7)
MAX_PLAN_WORDS = 1 << 22
MAX_CACHED_PLANS = 4096

# Plans (or the reason there is none) by (registry URL, reader schema, writer schema id), per process.
_PLANS: dict[tuple, Any] = {}
_PLANS_LOCK = threading.Lock()
# Reasons of the plans' OP_FAIL words (a writer union branch the reader cannot take), by index.
_FAIL_REASONS: list[str] = []


def _fail_reason(reason: str) -> int:
    with _PLANS_LOCK:
        if reason not in _FAIL_REASONS:
            _FAIL_REASONS.append(reason)
        return _FAIL_REASONS.index(reason)

SchemaLike = Union[str, dict, list]


class _Unresolvable(Exception):
    """A writer schema that cannot be read as the reader schema (Avro's resolution rules)."""


def _parse(schema: SchemaLike, what: str, named: Optional[dict] = None) -> Any:
    """A schema parsed by fastavro (names qualified); `named` holds named types defined elsewhere
    (referenced schemas) and receives the schema's own."""
    import fastavro

    if isinstance(schema, str):
        try:
            schema = json.loads(schema)
        except ValueError:
            pass  # a bare primitive name such as "long"
    try:
        return fastavro.parse_schema(schema, named_schemas=named if named is not None else {},
                                     _write_hint=False)
    except Exception as exc:  # fastavro raises several kinds (SchemaParseException, KeyError ...)
        raise ConfigError(f"Avro: {what} is not a valid Avro schema: {exc}") from None


def _parse_registered(registry: Any, found: Any, what: str) -> tuple[Any, dict]:
    """A registered schema and the named types of the schemas it references, parsed."""
    _check_avro(found, what)
    named: dict = {}
    pending = list(registry.referenced(found).items()) if found.references else []
    while pending:  # a referenced schema may use another: parse those whose names are known first
        failed = []
        for name, ref in pending:
            _check_avro(ref, f"{name} (referenced by {what})")
            try:
                _parse(ref.schema_str, name, named)
            except ConfigError:
                failed.append((name, ref))
        if len(failed) == len(pending):
            _parse(failed[0][1].schema_str, f"{failed[0][0]} (referenced by {what})", named)
        pending = failed
    parsed = _parse(found.schema_str, what, named)
    names = {key: value for key, value in named.items() if isinstance(value, dict)}
    return parsed, _named(parsed, names)


def _named(schema: Any, names: Optional[dict] = None) -> dict:
    """Every named type (record, enum, fixed) of a parsed schema by its full name."""
    names = {} if names is None else names
    if isinstance(schema, list):
        for branch in schema:
            _named(branch, names)
    elif isinstance(schema, dict):
        kind = schema.get("type")
        if kind in ("record", "error", "enum", "fixed") and "name" in schema:
            names.setdefault(schema["name"], schema)
        if kind in ("record", "error"):
            for field in schema.get("fields", []):
                _named(field["type"], names)
        elif kind == "array":
            _named(schema["items"], names)
        elif kind == "map":
            _named(schema["values"], names)
        elif isinstance(kind, (dict, list)):
            _named(kind, names)
    return names


def _deref(schema: Any, names: dict) -> Any:
    """The definition of a type: named references replaced, `{"type": "long"}` as "long"."""
    while True:
        if isinstance(schema, str) and schema in names:
            schema = names[schema]
        elif isinstance(schema, dict) and isinstance(schema.get("type"), (dict, list)) \
                and "logicalType" not in schema:
            schema = schema["type"]
        elif isinstance(schema, dict) and isinstance(schema.get("type"), str) and schema["type"] in names:
            schema = names[schema["type"]]
        else:
            return schema


def _kind(schema: Any) -> str:
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, str):
        return schema
    return "record" if schema["type"] == "error" else schema["type"]


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def _names_match(writer: dict, reader: dict) -> bool:
    aliases = {_short(a) for a in reader.get("aliases", [])}
    return _short(writer["name"]) == _short(reader["name"]) or _short(writer["name"]) in aliases


def _decimal(schema: Any) -> Optional[tuple[int, int]]:
    """(precision, scale) of a valid decimal logical type, else None (Avro ignores invalid ones)."""
    if not isinstance(schema, dict) or schema.get("logicalType") != "decimal":
        return None
    precision, scale = schema.get("precision"), schema.get("scale", 0)
    if not isinstance(precision, int) or not isinstance(scale, int) or not 0 <= scale <= precision \
            or not 1 <= precision <= 76:
        return None
    if schema["type"] == "fixed" and precision > int((8 * schema["size"] - 1) * 0.30103):
        return None
    return precision, scale


_LOGICAL = {
    ("int", "date"): pa.date32(),
    ("int", "time-millis"): pa.time32("ms"),
    ("long", "time-micros"): pa.time64("us"),
    ("long", "timestamp-millis"): pa.timestamp("ms", tz="UTC"),
    ("long", "timestamp-micros"): pa.timestamp("us", tz="UTC"),
    ("long", "timestamp-nanos"): pa.timestamp("ns", tz="UTC"),
    ("long", "local-timestamp-millis"): pa.timestamp("ms"),
    ("long", "local-timestamp-micros"): pa.timestamp("us"),
    ("long", "local-timestamp-nanos"): pa.timestamp("ns"),
}
_PRIMITIVE = {
    "null": (NODE_NULL, 0, pa.null()), "boolean": (NODE_BOOL, 0, pa.bool_()),
    "int": (NODE_FIXED, 4, pa.int32()), "long": (NODE_FIXED, 8, pa.int64()),
    "float": (NODE_FIXED, 4, pa.float32()), "double": (NODE_FIXED, 8, pa.float64()),
    "bytes": (NODE_BINARY, 0, pa.binary()), "string": (NODE_BINARY, 0, pa.string()),
}


class _Layout:
    """The reader schema as builder nodes (node 0 is the root) and its Arrow type."""

    def __init__(self, schema: Any, names: dict, max_depth: int) -> None:
        self.names = names
        self.max_depth = max_depth
        self.key = (json.dumps([schema, names], sort_keys=True), max_depth)
        self.nodes: list[Optional[tuple]] = []
        self.root = self._node(schema, True, 1, ())
        self.type: pa.DataType = self.nodes[self.root][4]
        self.batch = BatchLayout(self.nodes)

    def _node(self, schema: Any, nullable: bool, depth: int, stack: tuple) -> int:
        schema = _deref(schema, self.names)
        kind = _kind(schema)
        if kind == "union":
            present = [b for b in schema if _kind(_deref(b, self.names)) != "null"]
            if len(present) == 1:
                return self._node(present[0], nullable or len(schema) > 1, depth, stack)
            if not present:
                return self._node("null", True, depth, stack)
        if kind in ("record", "enum", "fixed"):
            if schema["name"] in stack:
                raise ConfigError(f"Avro: the reader schema's type {schema['name']} contains itself; a "
                                  "recursive type has no Arrow equivalent")
            stack = stack + (schema["name"],)
        if kind in ("record", "array", "map") and depth > self.max_depth:
            raise ConfigError(f"Avro: the reader schema nests deeper than max_depth={self.max_depth}")
        index = len(self.nodes)
        self.nodes.append(None)
        dictionary, null_child, width, children = None, -1, 0, ()
        if kind in _PRIMITIVE:
            storage, width, arrow = _PRIMITIVE[kind]
            logical = schema.get("logicalType") if isinstance(schema, dict) else None
            arrow = _LOGICAL.get((kind, logical), arrow)
            dec = _decimal(schema) if kind == "bytes" else None
            if dec is not None:
                storage, width, arrow = self._decimal_node(dec)
        elif kind == "fixed":
            storage, width, arrow = NODE_FIXED, schema["size"], pa.binary(schema["size"])
            dec = _decimal(schema)
            if dec is not None:
                storage, width, arrow = self._decimal_node(dec)
                if schema["size"] > width:
                    raise ConfigError(f"Avro: decimal fixed {schema['name']} of {schema['size']} bytes is "
                                      f"wider than Arrow's {width}-byte decimal")
        elif kind == "enum":
            storage, width = NODE_FIXED, 4
            arrow = pa.dictionary(pa.int32(), pa.string())
            dictionary = string_array(schema["symbols"])
        elif kind == "array":
            child = self._node(schema["items"], False, depth + 1, stack)
            storage, children = NODE_LIST, (child,)
            arrow = pa.list_(pa.field("item", self.nodes[child][4], self.nodes[child][2]))
        elif kind == "map":
            entries = len(self.nodes)
            self.nodes.append(None)
            key = self._node("string", False, depth + 1, stack)
            value = self._node(schema["values"], False, depth + 1, stack)
            arrow = pa.map_(pa.string(), pa.field("value", self.nodes[value][4], self.nodes[value][2]))
            self.nodes[entries] = (NODE_STRUCT, 0, False, (key, value), pa.struct([arrow.key_field, arrow.item_field]), None, -1)
            storage, children = NODE_LIST, (entries,)
        elif kind == "record":
            children = tuple(self._node(f["type"], False, depth + 1, stack) for f in schema["fields"])
            storage = NODE_STRUCT
            arrow = pa.struct([pa.field(f["name"], self.nodes[c][4], self.nodes[c][2])
                               for f, c in zip(schema["fields"], children)])
        elif kind == "union":
            children = tuple(self._node(b, False, depth, stack) for b in schema)
            null_child = next((i for i, c in enumerate(children) if self.nodes[c][0] == NODE_NULL), -1)
            storage = NODE_UNION
            arrow = pa.dense_union([pa.field(_type_name(_deref(b, self.names)), self.nodes[c][4])
                                    for b, c in zip(schema, children)], type_codes=list(range(len(children))))
            if len(children) > 127:
                raise ConfigError("Avro: a union of more than 127 branches has no Arrow equivalent")
        else:
            raise ConfigError(f"Avro: unsupported type {kind!r} in the reader schema")
        self.nodes[index] = (storage, width, bool(nullable or storage == NODE_NULL), children, arrow, dictionary,
                             null_child)
        return index

    @staticmethod
    def _decimal_node(dec: tuple[int, int]) -> tuple[int, int, pa.DataType]:
        precision, scale = dec
        if precision <= 38:
            return NODE_FIXED, 16, pa.decimal128(precision, scale)
        return NODE_FIXED, 32, pa.decimal256(precision, scale)


def _type_name(schema: Any) -> str:
    return schema if isinstance(schema, str) else schema.get("name", schema["type"])


def _zigzag(value: int) -> bytes:
    raw = (value << 1) ^ (value >> 63)
    out = bytearray()
    while raw >= 0x80:
        out.append((raw & 0x7F) | 0x80)
        raw >>= 7
    out.append(raw)
    return bytes(out)


def _encode(schema: Any, value: Any, names: dict) -> bytes:
    """The Avro binary encoding of a default value given in the schema's JSON form."""
    schema = _deref(schema, names)
    kind = _kind(schema)
    if kind == "union":  # a union's default is a value of its first branch
        return b"\x00" + _encode(schema[0], value, names)
    if kind == "null":
        if value is not None:
            raise ValueError(f"{value!r} is not null")
        return b""
    if kind == "boolean":
        if not isinstance(value, bool):
            raise ValueError(f"{value!r} is not a boolean")
        return b"\x01" if value else b"\x00"
    if kind in ("int", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"{value!r} is not an integer")
        return _zigzag(value)
    if kind == "float":
        return struct.pack("<f", value)
    if kind == "double":
        return struct.pack("<d", value)
    if kind in ("bytes", "string"):
        data = value.encode("latin-1" if kind == "bytes" else "utf-8") if isinstance(value, str) else bytes(value)
        return _zigzag(len(data)) + data
    if kind == "fixed":
        data = value.encode("latin-1") if isinstance(value, str) else bytes(value)
        if len(data) != schema["size"]:
            raise ValueError(f"{value!r} is not {schema['size']} bytes")
        return data
    if kind == "enum":
        return _zigzag(schema["symbols"].index(value))
    if kind == "array":
        items = b"".join(_encode(schema["items"], item, names) for item in value)
        return (_zigzag(len(value)) + items if value else b"") + b"\x00"
    if kind == "map":
        pairs = b"".join(_encode("string", k, names) + _encode(schema["values"], v, names)
                         for k, v in value.items())
        return (_zigzag(len(value)) + pairs if value else b"") + b"\x00"
    if kind == "record":
        return b"".join(_encode(f["type"], value[f["name"]] if f["name"] in value else f["default"], names)
                        for f in schema["fields"])
    raise ValueError(f"no default for type {kind}")


_PROMOTIONS = {
    ("boolean", "boolean"): "BOOL",
    ("int", "int"): "INT", ("int", "long"): "LONG", ("int", "float"): "INT_FLOAT",
    ("int", "double"): "INT_DOUBLE", ("long", "long"): "LONG", ("long", "float"): "INT_FLOAT",
    ("long", "double"): "INT_DOUBLE", ("float", "float"): "FLOAT", ("float", "double"): "FLOAT_DOUBLE",
    ("double", "double"): "DOUBLE", ("string", "string"): "STRING", ("bytes", "string"): "STRING",
    ("string", "bytes"): "BYTES", ("bytes", "bytes"): "BYTES",
}
_SKIP = {"null": ("NULL", 0), "boolean": ("BOOL", 1), "int": ("LONG", 1), "long": ("LONG", 1),
         "float": ("FLOAT", 4), "double": ("DOUBLE", 8), "bytes": ("BYTES", 1), "string": ("BYTES", 1)}


class _Planner:
    """Builds the decode plan of one writer schema into the reader's layout."""

    def __init__(self, layout: _Layout, reader: Any, writer_names: dict) -> None:
        self.layout = layout
        self.reader = reader
        self.wn = writer_names
        self.rn = layout.names
        self.words: list[int] = []
        self.consts = bytearray()
        self.tables: list[tuple[int, list[int]]] = []

    def plan(self, writer: Any) -> "_wire.Plan":
        self.emit(writer, self.wn, self.reader, self.layout.root, 1)
        for start, table in self.tables:  # enum tables go after the program
            self.words[start + 3] = len(self.words)
            self._put(*table)
        return _wire.Plan(self.words, bytes(self.consts))

    def _enum(self, node: int, table: list[int]) -> None:
        self.tables.append((self._put(OP["ENUM"], node, len(table), 0), table))

    def _put(self, *words: int) -> int:
        at = len(self.words)
        self.words.extend(words)
        if len(self.words) > MAX_PLAN_WORDS:
            raise _Unresolvable("the decode plan grows past its size limit (a deeply recursive writer type)")
        return at

    def _depth(self, depth: int) -> None:
        if depth > self.layout.max_depth:
            raise _Unresolvable(f"the writer schema nests deeper than max_depth={self.layout.max_depth}")

    def emit(self, w: Any, wn: dict, r: Any, node: int, depth: int) -> int:
        """Words reading a value of writer type `w` into `node` (reader type `r`; None: skip it).
        Returns the fewest bytes such a value takes."""
        w = _deref(w, wn)
        if _kind(w) != "union":
            return self._value(w, wn, r, node, depth) if r is not None else self._skip(w, wn, depth)
        start = self._put(OP["UNION"], node, len(w), 0, *([0] * len(w)))
        fewest = []
        for i, branch in enumerate(w):
            self.words[start + 4 + i] = len(self.words)
            if r is None:
                fewest.append(self.emit(branch, wn, None, -1, depth))
                continue
            mark = len(self.words)
            try:
                fewest.append(self._value(_deref(branch, wn), wn, r, node, depth))
            except _Unresolvable as exc:
                del self.words[mark:]
                self.tables = [entry for entry in self.tables if entry[0] < mark]
                branch_name = _type_name(_deref(branch, wn))
                self._put(OP["FAIL"], _fail_reason(f"the writer's union branch {i} ({branch_name}) cannot be "
                                                   f"read as the reader's type: {exc}"))
                fewest.append(0)
        self.words[start + 3] = len(self.words)
        return 1 + min(fewest)

    def _value(self, w: Any, wn: dict, r: Any, node: int, depth: int) -> int:
        """A non-union writer type into reader type `r`, which may be a union."""
        r = _deref(r, self.rn)
        if _kind(r) != "union":
            return self._match(w, wn, r, node, depth)
        layout = self.layout.nodes
        branches = [_deref(b, self.rn) for b in r]
        dense = layout[node][0] == NODE_UNION
        if _kind(w) == "null":
            if not any(_kind(b) == "null" for b in branches):
                raise _Unresolvable("null is not a branch of the reader's union")
            if dense:
                self._put(OP["SELECT"], node, layout[node][6], OP["NULL"], layout[node][3][layout[node][6]])
            else:
                self._put(OP["NULL"], node)
            return 0
        for exact in (True, False):
            for j, b in enumerate(branches):
                if _kind(b) == "null" or not self._matches(w, b, exact):
                    continue
                if not dense:
                    return self._match(w, wn, b, node, depth)
                self._put(OP["SELECT"], node, j)
                return self._match(w, wn, b, layout[node][3][j], depth)
        raise _Unresolvable(f"no branch of the reader's union matches the writer's {_type_name(w)}")

    def _matches(self, w: Any, r: Any, exact: bool) -> bool:
        wk, rk = _kind(w), _kind(r)
        if wk in ("record", "enum", "fixed"):
            return wk == rk and _names_match(w, r)
        if exact or wk not in _SKIP or rk not in _SKIP:
            return wk == rk
        return (wk, rk) in _PROMOTIONS

    def _match(self, w: Any, wn: dict, r: Any, node: int, depth: int) -> int:
        """A non-union writer type into a non-union reader type."""
        wk, rk = _kind(w), _kind(r)
        entry = self.layout.nodes[node]
        if wk == "null" and rk == "null":
            self._put(OP["NULL"], node)
            return 0
        if (wk, rk) in _PROMOTIONS:
            op = _PROMOTIONS[(wk, rk)]
            if rk == "bytes" and _decimal(r) is not None:
                self._same_decimal(w, r)
                self._put(OP["DEC_BYTES"], node, _decimal(r)[0])
                return _SKIP[wk][1]
            if op in ("INT", "LONG") and pa.types.is_time(entry[4]):  # Arrow's times hold one day only
                self._put(OP["TIME"], node, 1 if entry[4].unit == "us" else 0)
                return _SKIP[wk][1]
            self._put(OP[op], node)
            return _SKIP[wk][1]
        if wk == rk == "fixed":
            if not _names_match(w, r) or w["size"] != r["size"]:
                raise _Unresolvable(f"fixed {w['name']} ({w['size']} bytes) is not the reader's "
                                    f"fixed {r['name']} ({r['size']} bytes)")
            if _decimal(r) is not None:
                self._same_decimal(w, r)
                self._put(OP["DEC_FIXED"], node, w["size"], _decimal(r)[0])
            else:
                self._put(OP["FIXED"], node, w["size"])
            return w["size"]
        if wk == rk == "enum":
            if not _names_match(w, r):
                raise _Unresolvable(f"enum {w['name']} is not the reader's enum {r['name']}")
            symbols = r["symbols"]
            default = symbols.index(r["default"]) if r.get("default") in symbols else -1
            table = [symbols.index(s) if s in symbols else default for s in w["symbols"]]
            self._enum(node, table)
            return 1
        if wk == rk == "array":
            self._depth(depth + 1)
            start = self._put(OP["ARRAY"], node, 0, 0)
            fewest = self.emit(w["items"], wn, r["items"], entry[3][0], depth + 1)
            self.words[start + 2] = fewest
            self.words[start + 3] = len(self.words) - start - 4
            return 1
        if wk == rk == "map":
            self._depth(depth + 1)
            entries = entry[3][0]
            key, value = self.layout.nodes[entries][3]
            start = self._put(OP["MAP"], node, 0, 0, entries, key)
            fewest = self.emit(w["values"], wn, r["values"], value, depth + 1)
            self.words[start + 2] = 1 + fewest
            self.words[start + 3] = len(self.words) - start - 6
            return 1
        if wk == rk == "record":
            if not _names_match(w, r):
                raise _Unresolvable(f"record {w['name']} is not the reader's record {r['name']}")
            self._depth(depth + 1)
            return self._record(w, wn, r, node, depth)
        raise _Unresolvable(f"the writer's {_type_name(w)} cannot be read as the reader's {_type_name(r)}")

    @staticmethod
    def _same_decimal(w: Any, r: Any) -> None:
        if _decimal(w) is not None and _decimal(w)[1] != _decimal(r)[1]:
            raise _Unresolvable(f"decimal scale {_decimal(w)[1]} is not the reader's {_decimal(r)[1]}")

    def _record(self, w: dict, wn: dict, r: dict, node: int, depth: int) -> int:
        children = self.layout.nodes[node][3]
        index: dict[str, int] = {}
        for i, field in enumerate(r["fields"]):
            for name in [field["name"], *field.get("aliases", [])]:
                index.setdefault(name, i)
        start = self._put(OP["RECORD"], node, 0)
        count, fewest, read = 0, 0, set()
        for field in w["fields"]:
            i = index.get(field["name"])
            if i is None or i in read:
                fewest += self.emit(field["type"], wn, None, -1, depth + 1)
            else:
                read.add(i)
                fewest += self.emit(field["type"], wn, r["fields"][i]["type"], children[i], depth + 1)
            count += 1
        for i, field in enumerate(r["fields"]):
            if i in read:
                continue
            if "default" not in field:
                raise _Unresolvable(f"the reader's field {field['name']} of {r['name']} has no default "
                                    "and the writer has no such field")
            encoded = _encode(field["type"], field["default"], self.rn)
            self._put(OP["DEFAULT"], len(self.consts), len(encoded))
            self.consts += encoded
            self.emit(field["type"], self.rn, field["type"], children[i], depth + 1)
            count += 1
        self.words[start + 2] = count
        return fewest

    def _skip(self, w: Any, wn: dict, depth: int) -> int:
        """Words that read a writer value and keep nothing."""
        kind = _kind(w)
        if kind in _SKIP:
            op, fewest = _SKIP[kind]
            self._put(OP[op], -1)
            return fewest
        if kind == "fixed":
            self._put(OP["FIXED"], -1, w["size"])
            return w["size"]
        if kind == "enum":
            self._enum(-1, list(range(len(w["symbols"]))))
            return 1
        self._depth(depth + 1)
        if kind == "array":
            start = self._put(OP["ARRAY"], -1, 0, 0)
            self.words[start + 2] = self.emit(w["items"], wn, None, -1, depth + 1)
            self.words[start + 3] = len(self.words) - start - 4
            return 1
        if kind == "map":
            start = self._put(OP["MAP"], -1, 0, 0, -1, -1)
            self.words[start + 2] = 1 + self.emit(w["values"], wn, None, -1, depth + 1)
            self.words[start + 3] = len(self.words) - start - 6
            return 1
        if kind == "record":
            start = self._put(OP["RECORD"], -1, len(w["fields"]))
            return sum(self.emit(f["type"], wn, None, -1, depth + 1) for f in w["fields"])
        raise _Unresolvable(f"unsupported writer type {kind!r}")


_REASONS = {
    ERR["TRUNCATED"]: "truncated at byte {pos}",
    ERR["VARINT"]: "a varint longer than 10 bytes at byte {pos}",
    ERR["NEG_LENGTH"]: "negative length {a} at byte {pos}",
    ERR["LENGTH"]: "length {a} at byte {pos} is past the {b} bytes left",
    ERR["UNION_INDEX"]: "union branch {a} out of range (the union has {b}) at byte {pos}",
    ERR["ENUM_INDEX"]: "enum index {a} out of range (the enum has {b} symbols) at byte {pos}",
    ERR["ENUM_SYMBOL"]: "the writer's enum symbol number {a} is not in the reader's enum, which has no default",
    ERR["INT_RANGE"]: "int value {a} at byte {pos} is out of the 32-bit range",
    ERR["BOOL"]: "boolean byte {a} at byte {pos} (0 or 1 expected)",
    ERR["UTF8"]: "invalid UTF-8 in a string at byte {pos}",
    ERR["DECIMAL_SIZE"]: "a decimal of {a} bytes at byte {pos} is wider than its Arrow type",
    ERR["TRAILING"]: "{a} bytes left over after the datum at byte {pos}",
    ERR["COUNT"]: "block count {a} at byte {pos} is more than the {b} bytes left can hold",
    ERR["TIME_RANGE"]: "time of day {a} at byte {pos} is outside one day (0 to 24 h)",
    ERR["PRECISION"]: "a decimal at byte {pos} has more digits than its precision {a}",
    ERR["EMPTY_ITEMS"]: ("block count {a} at byte {pos} takes the record past {b} array or map items of no "
                         "bytes (nulls, empty records)"),
    ERR["TOO_LARGE"]: "a column of the batch would pass Arrow's 2 GiB limit",
}


class Avro(Format):
    """Avro records decoded into typed Arrow columns by the compiled core.

    With `schema_registry` (a URL, a dict of `confluent_kafka.schema_registry.SchemaRegistryClient`
    settings, or such a client) records are in Confluent's wire format (byte 0, a 4-byte big-endian
    schema id, the Avro datum). Each writer schema met is fetched once by id and resolved against the
    reader schema with Avro's rules (fields added with defaults, removed fields skipped, int→long→
    float→double and string↔bytes promotions, enum defaults, union branches), so the column's type is
    the reader schema's whatever version wrote a record. The reader schema is `reader_schema` (Avro
    JSON text or dict) or, by default, the latest version of the subject `<topic>-value` (`-key` for
    keys) when the read starts. With `schema` instead, records are plain Avro datums of that schema.

    Types: boolean, int→int32, long→int64, float→float32, double→float64, bytes→binary,
    string→string, record→struct, enum→dictionary<int32, string>, array→list, map→map<string, T>,
    fixed→fixed_size_binary(n), a union of null and one type→that type, nullable; other unions→dense
    union (null branches as null-type children). Logical types: date→date32, time-millis→time32[ms],
    time-micros→time64[us], timestamp-millis/micros/nanos→timestamp[ms/us/ns, UTC],
    local-timestamp-*→timestamp without zone, decimal (bytes or fixed)→decimal128(p, s) or, past 38
    digits, decimal256, uuid→string. Mapped otherwise, and why:
    - A top-level value is always nullable (a Kafka value may be null); other fields are nullable only
      when their Avro type is a union with null. A child of a null struct holds its type's empty value.
    - Invalid logical types, uuid on fixed and duration are read as their underlying type, as the Avro
      specification says for logical types a reader does not know.
    - When writer and reader differ only in a logical type (timestamp-millis written, -micros read),
      the underlying value is kept, as Avro's resolution rules say; no unit conversion is made.
    - Recursive types have no Arrow equivalent: a recursive reader schema is refused (ConfigError).

    Undecodable records (handled by `errors`): no wire-format header, an unknown schema id, a writer
    schema that does not resolve against the reader schema, a truncated datum, a varint past 10 bytes,
    a negative or overlong length, a union or enum index out of range, an enum symbol the reader lacks
    (and no default), invalid UTF-8 in a string, bytes left after the datum, a time-millis/micros
    outside one day or a decimal with more digits than its precision (Arrow's types cannot hold them),
    more than 65536 array/map items of no bytes (nulls, empty records) in one record, and writer
    schemas nesting records/arrays/maps more than `max_depth` levels deep (at most MAX_DEPTH_LIMIT).
    """

    MAX_DEPTH_LIMIT = 250

    def __init__(self, schema_registry: Any = None, reader_schema: Optional[SchemaLike] = None,
                 schema: Optional[SchemaLike] = None, errors: str = "raise", max_depth: int = 64) -> None:
        if schema is not None and (schema_registry is not None or reader_schema is not None):
            raise ConfigError("Avro: give schema (plain datums) or schema_registry (with an optional "
                              "reader_schema), not both")
        if schema is None and schema_registry is None:
            raise ConfigError("Avro: give schema_registry (Confluent's wire format) or schema (plain datums)")
        if (isinstance(max_depth, bool) or not isinstance(max_depth, int)
                or not 1 <= max_depth <= self.MAX_DEPTH_LIMIT):
            raise ConfigError(f"Avro: max_depth must be an integer from 1 to {self.MAX_DEPTH_LIMIT}, "
                              f"not {max_depth!r}")
        self._set_errors(errors)
        self.max_depth = max_depth
        self.registry = None
        if schema_registry is not None:
            from fastsource.formats.registry import as_registry

            self.registry = as_registry(schema_registry)
        self.subject: Optional[str] = None
        self._reader: Any = None
        self._layout: Optional[_Layout] = None
        given = schema if schema is not None else reader_schema
        if given is not None:
            self._set_reader(given, "schema" if schema is not None else "reader_schema")
        self._plans: dict[int, Any] = {}

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_plans"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._plans = {}

    def __repr__(self) -> str:
        where = f"schema_registry={self.registry.url!r}" if self.registry is not None else "schema=..."
        return f"Avro({where}, errors={self.errors!r})"

    def _set_reader(self, schema: SchemaLike, what: str) -> None:
        parsed = _parse(schema, what)
        self._set_parsed(parsed, _named(parsed))

    def _set_parsed(self, parsed: Any, names: dict) -> None:
        self._reader = parsed
        self._layout = _Layout(parsed, names, self.max_depth)

    def bind(self, topics: Optional[Sequence[str]], is_key: bool, broker_timeout_ms: int) -> "Avro":
        if self.registry is None:
            return self
        bound = copy.copy(self)
        bound._plans = {}
        self.registry.timeout_ms = broker_timeout_ms  # shared: a client copy would lose its cache
        if self._layout is None:
            suffix = "-key" if is_key else "-value"
            if not topics:
                raise ConfigError(f"Avro: without reader_schema the reader schema is the latest of the "
                                  f"subject <topic>{suffix}, which needs the topics named; give reader_schema "
                                  "to read a topic pattern")
            latest = {}
            for topic in sorted(set(topics)):
                schema_id, found = bound.registry.latest(topic + suffix)
                latest.setdefault(schema_id, (topic + suffix, found))
            if len(latest) > 1:
                raise ConfigError(f"Avro: the subjects {', '.join(s for s, _ in latest.values())} have "
                                  "different latest schemas; give reader_schema to read them as one")
            bound.subject, found = next(iter(latest.values()))
            parsed, names = _parse_registered(bound.registry, found, f"the latest schema of {bound.subject}")
            bound._set_parsed(parsed, names)
        return bound

    def output_type(self) -> Optional[pa.DataType]:
        return self._layout.type if self._layout is not None else None

    def _plan(self, schema_id: int) -> Any:
        """The plan of a writer schema id, or None when it has none (the reason is kept with it).
        Plans are kept per process (`_PLANS`), so the read tasks and actors of one worker build each
        (writer, reader) plan once."""
        plan = self._plans.get(schema_id)
        if plan is None:
            key = (self.registry.url if self.registry is not None else None, self._layout.key, schema_id)
            with _PLANS_LOCK:
                plan = _PLANS.get(key)
            if plan is None:
                plan = self._make_plan(schema_id)
                with _PLANS_LOCK:
                    if len(_PLANS) >= MAX_CACHED_PLANS:
                        _PLANS.pop(next(iter(_PLANS)))
                    plan = _PLANS.setdefault(key, plan)
            self._plans[schema_id] = plan
        return plan

    def _make_plan(self, schema_id: int) -> Union["_wire.Plan", str]:
        """A writer schema's plan, or the reason there is none."""
        if self.registry is None:
            writer, names = self._reader, self._layout.names
        else:
            from fastsource.formats.registry import UnknownSchemaError

            try:
                writer, names = _parse_registered(self.registry, self.registry.schema(schema_id),
                                                  f"the writer schema of id {schema_id}")
            except UnknownSchemaError:
                return f"schema id {schema_id} is not in the registry at {self.registry.url}"
            except ConfigError as exc:
                return str(exc)
        try:
            return _Planner(self._layout, self._reader, names).plan(writer)
        except (_Unresolvable, ValueError, KeyError, TypeError) as exc:
            return f"the writer schema of id {schema_id} cannot be read as the reader schema: {exc}"

    def decode(self, raw: pa.Array) -> pa.Array:
        if self._layout is None:
            raise ConfigError("Avro(schema_registry=...) without reader_schema is bound to its topics when "
                              "the read starts; decode() was called before")
        raw = as_binary(raw)
        framed = self.registry is not None
        ids = _wire.schema_ids(raw) if framed else [0]
        plans = {schema_id: self._plan(schema_id) for schema_id in ids}
        array, bad = _avro.decode(raw, self._layout.batch,
                                  {k: v if isinstance(v, _wire.Plan) else None for k, v in plans.items()},
                                  framed)
        if bad is None:
            return array
        row, code, a, b, pos = bad
        if code == ERR["NOMEM"]:
            raise MemoryError("Avro: out of memory decoding a batch")
        raise RecordDecodeError(row, self._reason(code, a, b, pos))

    def _reason(self, code: int, a: int, b: int, pos: int) -> str:
        if code == ERR["NOT_WIRE"]:
            if a < 0:
                return "not in Confluent's wire format: shorter than its 5-byte header"
            return f"not in Confluent's wire format: first byte {a:#04x} (magic byte 0 expected)"
        if code == ERR["SCHEMA"]:
            return self._plans.get(a) or f"schema id {a} has no decode plan"
        if code == ERR["FAIL"]:
            return f"{_FAIL_REASONS[a] if 0 <= a < len(_FAIL_REASONS) else 'unresolvable'} (at byte {pos})"
        return _REASONS.get(code, "undecodable (code {code})").format(a=a, b=b, pos=pos, code=code)


def _check_avro(found: Any, what: str) -> None:
    kind = getattr(found, "schema_type", None) or "AVRO"
    if kind.upper() != "AVRO":
        raise ConfigError(f"{what} is a {kind} schema, not Avro")
