"""Protobuf messages, bare or in Confluent's wire format, decoded by the compiled core.

The decode plan comes from the message descriptor, once: a flat program of int32 words (the layout
of `_protobuf.pyx`) that `_protobuf.decode` runs over a whole batch with the GIL released.
"""
from __future__ import annotations

import threading
from typing import Any, Optional, Sequence

import pyarrow as pa

from fastsource.errors import ConfigError
from fastsource.formats import Format, RecordDecodeError, as_binary
from fastsource.formats import _protobuf, _wire
from fastsource.formats._builders import BatchLayout, string_array

NODE_NULL, NODE_BOOL, NODE_FIXED, NODE_BINARY, NODE_STRUCT, NODE_LIST, NODE_UNION = range(7)
L = _protobuf.LAYOUT
ERR = _protobuf.ERRORS
MAX_TABLE_NUMBER = 4096

# FieldDescriptor types: (wire type, storage, width, Arrow type).
_SCALARS = {
    1: (1, NODE_FIXED, 8, pa.float64()), 2: (5, NODE_FIXED, 4, pa.float32()),
    3: (0, NODE_FIXED, 8, pa.int64()), 4: (0, NODE_FIXED, 8, pa.uint64()),
    5: (0, NODE_FIXED, 4, pa.int32()), 6: (1, NODE_FIXED, 8, pa.uint64()),
    7: (5, NODE_FIXED, 4, pa.uint32()), 8: (0, NODE_BOOL, 0, pa.bool_()),
    9: (2, NODE_BINARY, 0, pa.string()), 12: (2, NODE_BINARY, 0, pa.binary()),
    13: (0, NODE_FIXED, 4, pa.uint32()), 15: (5, NODE_FIXED, 4, pa.int32()),
    16: (1, NODE_FIXED, 8, pa.int64()), 17: (0, NODE_FIXED, 4, pa.int32()),
    18: (0, NODE_FIXED, 8, pa.int64()),
}
TYPE_MESSAGE, TYPE_ENUM, TYPE_GROUP = 11, 14, 10
_WRAPPERS = {f"google.protobuf.{name}Value": kind for name, kind in (
    ("Double", 1), ("Float", 2), ("Int64", 3), ("UInt64", 4), ("Int32", 5), ("UInt32", 13), ("Bool", 8),
    ("String", 9), ("Bytes", 12))}
_TIMES = {"google.protobuf.Timestamp": (L["TIMESTAMP"], pa.timestamp("ns", tz="UTC")),
          "google.protobuf.Duration": (L["DURATION"], pa.duration("ns"))}


def _plan(descriptor: Any, max_depth: int) -> tuple[BatchLayout, list[int], pa.DataType]:
    """(layout, plan words, Arrow type) of a message descriptor."""
    return _PlanWriter(descriptor, max_depth).result()


class _PlanWriter:
    """Writes the layout and the plan of a message and of every message it holds, depth first: a
    message's words are written once all its fields are known, so each plan is contiguous."""

    def __init__(self, descriptor: Any, max_depth: int) -> None:
        self.max_depth = max_depth
        self.nodes: list[Optional[tuple]] = []
        self.words: list[int] = []
        self.root_pc = -1
        node, pc = self._message(descriptor, True, 1, (), root=True)
        self.type = self.nodes[node][4]

    def result(self) -> tuple[BatchLayout, list[int], pa.DataType]:
        return BatchLayout(self.nodes), self.words, self.type

    def _new_node(self, entry: Optional[tuple] = None) -> int:
        self.nodes.append(entry)
        return len(self.nodes) - 1

    def _message(self, descriptor: Any, nullable: bool, depth: int, stack: tuple,
                 root: bool = False) -> tuple[int, int]:
        """(struct node, plan pc) of a message. The root's plan is at pc 0: its words are reserved
        first and nested plans follow."""
        name = descriptor.full_name
        if name in stack:
            raise ConfigError(f"Protobuf: message {name} contains itself; a recursive message has no "
                              "Arrow equivalent")
        if depth > self.max_depth:
            raise ConfigError(f"Protobuf: {stack[0] if stack else name} nests messages deeper than "
                              f"max_depth={self.max_depth}")
        stack = stack + (name,)
        fields = sorted(descriptor.fields, key=lambda f: f.number)
        if len(fields) > L["SEEN_FIELDS"]:
            raise ConfigError(f"Protobuf: message {name} has {len(fields)} fields, more than "
                              f"{L['SEEN_FIELDS']}")
        node = self._new_node()
        pc = len(self.words)
        self.words.extend([0] * (L["MSG_WORDS"] + L["FIELD_WORDS"] * len(fields)))
        oneofs = {o.full_name: i + 1 for i, o in enumerate(descriptor.oneofs)}
        children, arrow_fields = [], []
        for i, field in enumerate(fields):
            words, child, arrow_field = self._field(field, depth, stack, oneofs)
            at = pc + L["MSG_WORDS"] + i * L["FIELD_WORDS"]
            self.words[at:at + L["FIELD_WORDS"]] = words
            children.append(child)
            arrow_fields.append(arrow_field)
        maxnum = max((f.number for f in fields), default=0)
        table = -1
        if maxnum <= MAX_TABLE_NUMBER:
            table = len(self.words)
            numbers = [-1] * (maxnum + 1)
            for i, field in enumerate(fields):
                numbers[field.number] = i
            self.words.extend(numbers)
        self.words[pc:pc + L["MSG_WORDS"]] = [node, len(fields), maxnum, table]
        self.nodes[node] = (NODE_STRUCT, 0, nullable, tuple(children), pa.struct(arrow_fields), None, -1)
        return node, pc

    def _scalar_node(self, kind: int, nullable: bool) -> int:
        _, storage, width, arrow = _SCALARS[kind]
        return self._new_node((storage, width, nullable, (), arrow, None, -1))

    def _field(self, field: Any, depth: int, stack: tuple, oneofs: dict) -> tuple[list[int], int, pa.Field]:
        """The words of a field, its node and its Arrow field."""
        repeated = field.is_repeated if hasattr(field, "is_repeated") else field.label == field.LABEL_REPEATED
        message = field.message_type
        is_map = repeated and message is not None and message.GetOptions().map_entry
        nullable = not repeated and (message is not None or field.containing_oneof is not None
                                     or field.has_presence)
        kind, extra, sub = field.type, 0, 0
        if field.type == TYPE_GROUP:
            raise ConfigError(f"Protobuf: field {field.full_name} is a group, which is not supported")
        if message is not None and message.full_name in _TIMES:
            kind, arrow = _TIMES[message.full_name]
            wire = 2
            value = self._new_node((NODE_FIXED, 8, nullable, (), arrow, None, -1))
        elif message is not None and message.full_name in _WRAPPERS:
            kind, extra, wire = L["WRAPPER"], _WRAPPERS[message.full_name], 2
            value = self._scalar_node(extra, nullable)
        elif message is not None:
            wire = 2
            value, sub = self._message(message, nullable, depth + 1, stack)
            if is_map:  # map entries: the key is never null in Arrow's map type
                key_node = self.nodes[value][3][0]
                entry = self.nodes[value]
                key_type = self.nodes[key_node][4]
                self.nodes[value] = entry[:4] + (pa.struct([pa.field("key", key_type, False),
                                                            entry[4].field(1)]),) + entry[5:]
        elif field.type == TYPE_ENUM:
            wire = 0
            values = list(field.enum_type.values)
            first: dict[int, int] = {}
            for i, v in enumerate(values):  # aliases (allow_alias) share a number: the first name wins
                first.setdefault(v.number, i)
            sub = len(self.words)
            self.words.extend(x for number in sorted(first) for x in (number, first[number]))
            extra = len(first)
            value = self._new_node((NODE_FIXED, 4, nullable, (), pa.dictionary(pa.int32(), pa.string()),
                                    string_array([v.name for v in values]), -1))
        else:
            wire = _SCALARS[field.type][0]
            value = self._scalar_node(field.type, nullable)
        value_type = self.nodes[value][4]
        oneof = oneofs.get(field.containing_oneof.full_name, 0) if field.containing_oneof is not None else 0
        if not repeated:
            return ([field.number, kind, wire, value, 0, sub, extra, 0, oneof], value,
                    pa.field(field.name, value_type, nullable))
        flags = L["REPEATED"] | (L["PACKABLE"] if wire in (0, 1, 5) and kind < L["TIMESTAMP"] else 0)
        if is_map:
            arrow = pa.map_(value_type.field(0), value_type.field(1))
        else:
            arrow = pa.list_(pa.field("item", value_type, False))
        node = self._new_node((NODE_LIST, 0, False, (value,), arrow, None, -1))
        return [field.number, kind, wire, node, flags, sub, extra, value, oneof], node, pa.field(field.name, arrow, False)


_REASONS = {
    ERR["TRUNCATED"]: "truncated at byte {pos}",
    ERR["VARINT"]: "a varint longer than 10 bytes at byte {pos}",
    ERR["LENGTH"]: "length {a} at byte {pos} is past the {b} bytes left",
    ERR["UTF8"]: "invalid UTF-8 in a string at byte {pos}",
    ERR["DEPTH"]: "nested deeper than max_depth={a} at byte {pos}",
    ERR["WIRE_TYPE"]: "invalid wire type {a} at byte {pos}",
    ERR["FIELD_ZERO"]: "field number 0 at byte {pos}",
    ERR["ENUM_VALUE"]: "enum value {a} at byte {pos} is not a value of the enum",
    ERR["DUP_MESSAGE"]: "message field {a} is set twice at byte {pos} (merging messages is not supported)",
    ERR["RANGE"]: "a time of {a} s {b} ns at byte {pos} is out of the range of nanoseconds in 64 bits",
    ERR["INDEXES"]: "invalid message-index array (count {a}) at byte {pos}",
    ERR["GROUP"]: "an end-group tag of field {a} without its start at byte {pos}",
    ERR["TOO_LARGE"]: "a column of the batch would pass Arrow's 2 GiB limit",
}


class Protobuf(Format):
    """Protobuf messages decoded into a struct column by the compiled core.

    `message` is a generated message class (or its Descriptor). With `schema_registry` (a URL, a dict
    of `SchemaRegistryClient` settings, or such a client), records are in Confluent's Protobuf wire
    format: byte 0, a 4-byte big-endian schema id (which must be a Protobuf schema in the registry),
    the message-index array, then the message. Without it, records are bare messages.

    Types: message→struct, repeated→list (elements never null), map fields→map<K, V>,
    enum→dictionary<int32, string> (the value names), oneof members and fields with presence
    (proto3 `optional`, proto2 optional)→nullable fields, nested messages→nullable struct,
    google.protobuf.Timestamp→timestamp[ns, UTC], Duration→duration[ns], wrappers (Int32Value …)→
    nullable scalars, int32/sint32/sfixed32→int32, int64/sint64/sfixed64→int64, uint32/fixed32→uint32,
    uint64/fixed64→uint64, float→float32, double→float64, bool, string, bytes→binary. An absent field
    without presence reads as protobuf's default (0, false, empty, the enum's first value); a singular
    field set twice keeps its last value; unknown fields (and groups) are skipped; a known field with
    an unexpected wire type is skipped as protobuf's parsers do. Mapped otherwise, and why:
    - The message is decoded with `message`'s descriptor, as confluent-kafka's ProtobufDeserializer
      does; the message-index array is checked for form but not matched against the writer's file.
    - A proto3 enum field holding a number the enum does not name has no dictionary entry: it is an
      undecodable record, not a number.
    - A singular message field (or two members of one oneof holding messages) sent twice in one record
      would need merging, which is not supported: undecodable.
    - Recursive messages (google.protobuf.Struct among them) and groups have no Arrow mapping here:
      refused with ConfigError.

    Undecodable records (handled by `errors`): no wire-format header, a schema id that is not a
    Protobuf schema in the registry, a bad message-index array, a truncated message, a varint past
    10 bytes, a length past the record's end, field number 0, an invalid wire type, invalid UTF-8 in a
    string, an unknown enum number, a Timestamp out of range, nesting past `max_depth`.
    """

    MAX_DEPTH_LIMIT = 250

    def __init__(self, message: Any, schema_registry: Any = None, errors: str = "raise",
                 max_depth: int = 64) -> None:
        descriptor = getattr(message, "DESCRIPTOR", message)
        if not hasattr(descriptor, "fields") or not hasattr(descriptor, "full_name"):
            raise ConfigError(f"Protobuf: message must be a generated message class or a message "
                              f"Descriptor, not {message!r}")
        if (isinstance(max_depth, bool) or not isinstance(max_depth, int)
                or not 1 <= max_depth <= self.MAX_DEPTH_LIMIT):
            raise ConfigError(f"Protobuf: max_depth must be an integer from 1 to {self.MAX_DEPTH_LIMIT}, "
                              f"not {max_depth!r}")
        self._set_errors(errors)
        self.max_depth = max_depth
        self.message_name = descriptor.full_name
        self.registry = None
        if schema_registry is not None:
            from fastsource.formats.registry import as_registry

            self.registry = as_registry(schema_registry)
        self._layout, self._words, self._type = _plan(descriptor, max_depth)
        self._setup()

    def _setup(self) -> None:
        self._plan = _wire.Plan(self._words)
        self._ids: dict[int, Optional[str]] = {}  # schema id -> None (usable) or why not
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("_plan", "_ids", "_lock")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._setup()

    def __repr__(self) -> str:
        where = f", schema_registry={self.registry.url!r}" if self.registry is not None else ""
        return f"Protobuf({self.message_name}{where}, errors={self.errors!r})"

    def bind(self, topics: Optional[Sequence[str]], is_key: bool, broker_timeout_ms: int) -> "Protobuf":
        if self.registry is not None:
            self.registry.timeout_ms = broker_timeout_ms
        return self

    def output_type(self) -> pa.DataType:
        return self._type

    def _check_id(self, schema_id: int) -> Optional[str]:
        """None when records may name this schema id, else why not."""
        if schema_id in self._ids:
            return self._ids[schema_id]
        from fastsource.formats.registry import UnknownSchemaError

        try:
            kind = (self.registry.schema(schema_id).schema_type or "AVRO").upper()
            reason = None if kind == "PROTOBUF" else f"schema id {schema_id} is a {kind} schema, not Protobuf"
        except UnknownSchemaError:
            reason = f"schema id {schema_id} is not in the registry at {self.registry.url}"
        with self._lock:
            self._ids[schema_id] = reason
        return reason

    def decode(self, raw: pa.Array) -> pa.Array:
        raw = as_binary(raw)
        framed = self.registry is not None
        known = {sid: self._check_id(sid) is None for sid in _wire.schema_ids(raw)} if framed else {}
        array, bad = _protobuf.decode(raw, self._layout, self._plan, known, framed, self.max_depth)
        if bad is None:
            return array
        row, code, a, b, pos = bad
        if code == ERR["NOMEM"]:
            raise MemoryError("Protobuf: out of memory decoding a batch")
        if code == ERR["NOT_WIRE"]:
            reason = ("not in Confluent's wire format: " + ("shorter than its 5-byte header" if a < 0 else
                      f"first byte {a:#04x} (magic byte 0 expected)"))
        elif code == ERR["SCHEMA"]:
            reason = self._ids.get(a) or f"schema id {a} is not usable"
        else:
            reason = _REASONS.get(code, "undecodable (code {code})").format(a=a, b=b, pos=pos, code=code)
        raise RecordDecodeError(row, reason)
