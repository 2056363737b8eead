"""fastsource.formats.Avro: the compiled decoder against fastavro's own reading, Avro's resolution
rules across writer versions (confluent-kafka's mock registry), and every kind of bad input."""
from __future__ import annotations

import datetime
import decimal
import io
import json
import pickle
import struct
import uuid

import fastavro
import pyarrow as pa
import pytest
from confluent_kafka.schema_registry import Schema
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from hypothesis import given, settings
from hypothesis import strategies as st

from fastsource.errors import ConfigError, DecodeError
from fastsource.formats import RecordDecodeError
from fastsource.formats.avro import Avro
from fastsource.kafka.reader.emitter import KafkaRecordEmitter
from fastsource.base.reader.split_reader import RecordsWithSplitIds
from fastsource.kafka.reader.split_reader import KafkaPartitionSplitReader

UTC = datetime.timezone.utc

EVERY_TYPE = {"type": "record", "name": "Every", "namespace": "t", "fields": [
    {"name": "l", "type": "long"}, {"name": "s", "type": "string"}, {"name": "d", "type": "double"},
    {"name": "b", "type": "boolean"}, {"name": "i", "type": "int"}, {"name": "f", "type": "float"},
    {"name": "by", "type": "bytes"}, {"name": "nul", "type": "null"},
    {"name": "e", "type": {"type": "enum", "name": "Color", "symbols": ["RED", "GREEN", "BLUE"]}},
    {"name": "e2", "type": "Color"},
    {"name": "arr", "type": {"type": "array", "items": "long"}},
    {"name": "m", "type": {"type": "map", "values": ["null", "double"]}},
    {"name": "fx", "type": {"type": "fixed", "name": "F4", "size": 4}},
    {"name": "opt", "type": ["null", "string"]},
    {"name": "u", "type": ["int", "string", "null"]},
    {"name": "sub", "type": ["null", {"type": "record", "name": "Sub", "fields": [
        {"name": "x", "type": "int"}, {"name": "ys", "type": {"type": "array", "items": "string"}}]}]},
    {"name": "subs", "type": {"type": "array", "items": "Sub"}},
    {"name": "date", "type": {"type": "int", "logicalType": "date"}},
    {"name": "tmil", "type": {"type": "int", "logicalType": "time-millis"}},
    {"name": "tmic", "type": {"type": "long", "logicalType": "time-micros"}},
    {"name": "tsms", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "tsus", "type": {"type": "long", "logicalType": "timestamp-micros"}},
    {"name": "ltms", "type": {"type": "long", "logicalType": "local-timestamp-millis"}},
    {"name": "ltus", "type": {"type": "long", "logicalType": "local-timestamp-micros"}},
    {"name": "dec", "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}},
    {"name": "decf", "type": {"type": "fixed", "name": "DF", "size": 8, "logicalType": "decimal",
                              "precision": 12, "scale": 3}},
    {"name": "uid", "type": {"type": "string", "logicalType": "uuid"}},
]}

EVERY_ARROW = pa.struct([
    pa.field("l", pa.int64(), False), pa.field("s", pa.string(), False), pa.field("d", pa.float64(), False),
    pa.field("b", pa.bool_(), False), pa.field("i", pa.int32(), False), pa.field("f", pa.float32(), False),
    pa.field("by", pa.binary(), False), pa.field("nul", pa.null(), True),
    pa.field("e", pa.dictionary(pa.int32(), pa.string()), False),
    pa.field("e2", pa.dictionary(pa.int32(), pa.string()), False),
    pa.field("arr", pa.list_(pa.field("item", pa.int64(), False)), False),
    pa.field("m", pa.map_(pa.string(), pa.float64()), False),
    pa.field("fx", pa.binary(4), False), pa.field("opt", pa.string(), True),
    pa.field("u", pa.dense_union([pa.field("int", pa.int32()), pa.field("string", pa.string()),
                                  pa.field("null", pa.null())], type_codes=[0, 1, 2]), False),
    pa.field("sub", pa.struct([pa.field("x", pa.int32(), False),
                               pa.field("ys", pa.list_(pa.field("item", pa.string(), False)), False)]), True),
    pa.field("subs", pa.list_(pa.field("item", pa.struct([
        pa.field("x", pa.int32(), False), pa.field("ys", pa.list_(pa.field("item", pa.string(), False)),
                                                   False)]), False)), False),
    pa.field("date", pa.date32(), False), pa.field("tmil", pa.time32("ms"), False),
    pa.field("tmic", pa.time64("us"), False), pa.field("tsms", pa.timestamp("ms", "UTC"), False),
    pa.field("tsus", pa.timestamp("us", "UTC"), False), pa.field("ltms", pa.timestamp("ms"), False),
    pa.field("ltus", pa.timestamp("us"), False), pa.field("dec", pa.decimal128(10, 2), False),
    pa.field("decf", pa.decimal128(12, 3), False), pa.field("uid", pa.string(), False),
])


def encode(schema: dict, record: object) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(json.loads(json.dumps(schema))), record)
    return out.getvalue()


def every_record(k: int) -> dict:
    return dict(
        l=[0, 1, -1, 2 ** 63 - 1, -(2 ** 63), 123456789012][k], s="héllo ✓" * k, d=k / 3, b=k % 2 == 0, i=-(2 ** 31) + k, f=1.5 * k,
        by=bytes(range(k)), nul=None, e=["RED", "GREEN", "BLUE"][k % 3], e2="BLUE",
        arr=list(range(k)), m={"a": 1.5, "b": None} if k else {}, fx=b"ab\x00d", opt=None if k % 2 else "x",
        u=[1, "s", None, -7, "q"][k % 5], sub=None if k == 1 else {"x": k, "ys": ["p"] * k},
        subs=[{"x": j, "ys": []} for j in range(k % 3)],
        date=datetime.date(2020, 1, 1) + datetime.timedelta(days=k * 400),
        tmil=datetime.time(1, 2, 3, 4000), tmic=datetime.time(23, 59, 59, 999999),
        tsms=datetime.datetime(2024, 1, 1, tzinfo=UTC) + datetime.timedelta(milliseconds=k),
        tsus=datetime.datetime(1969, 12, 31, 23, 59, 59, 123456, tzinfo=UTC),
        ltms=datetime.datetime(2024, 2, 29, 12, 0, 0, 5000), ltus=datetime.datetime(2001, 1, 1, 0, 0, 0, 1),
        dec=decimal.Decimal("-123.45") * k, decf=decimal.Decimal("99.999") - k,
        uid=str(uuid.UUID(int=k * 12345)))


def comparable(value: object) -> object:
    """fastavro's Python values in the form pyarrow's to_pylist gives them."""
    if isinstance(value, dict):
        return {k: comparable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [comparable(v) for v in value]
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def arrow_rows(array: pa.Array) -> list:
    rows = array.to_pylist()
    for row in rows:
        if row is not None:
            row["m"] = dict(row["m"])
    return rows


def test_every_type_and_logical_type_decodes_as_fastavro_reads_it():
    records = [every_record(k) for k in range(6)]
    raw = pa.array([encode(EVERY_TYPE, r) for r in records] + [None], pa.binary())
    fmt = Avro(schema=EVERY_TYPE)
    assert fmt.output_type() == EVERY_ARROW
    out = fmt.decode(raw)
    out.validate(full=True)
    assert out.type == EVERY_ARROW
    parsed = fastavro.parse_schema(json.loads(json.dumps(EVERY_TYPE)))
    expected = [comparable(fastavro.schemaless_reader(io.BytesIO(encode(EVERY_TYPE, r)), parsed)) for r in records]
    assert arrow_rows(out)[:-1] == expected
    assert out[len(records)].as_py() is None  # a null Kafka value stays null


def test_a_slice_of_a_batch_decodes_its_own_rows():
    raw = pa.array([encode(EVERY_TYPE, every_record(k)) for k in range(6)], pa.binary())
    fmt = Avro(schema=EVERY_TYPE)
    assert arrow_rows(fmt.decode(raw.slice(2, 3))) == arrow_rows(fmt.decode(raw))[2:5]


LONG_SCHEMA = {"type": "record", "name": "N", "fields": [
    {"name": "a", "type": "long"}, {"name": "s", "type": ["null", "string"]},
    {"name": "xs", "type": {"type": "array", "items": "double"}}]}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.fixed_dictionaries({
    "a": st.integers(-2 ** 63, 2 ** 63 - 1), "s": st.none() | st.text(max_size=30),
    "xs": st.lists(st.floats(allow_nan=False), max_size=5)}) | st.none(), max_size=40))
def test_random_records_decode_as_fastavro_reads_them(records):
    raw = pa.array([None if r is None else encode(LONG_SCHEMA, r) for r in records], pa.binary())
    assert Avro(schema=LONG_SCHEMA).decode(raw).to_pylist() == records


# --- resolution of writer versions -----------------------------------------------------------------

V1 = {"type": "record", "name": "User", "namespace": "app", "fields": [
    {"name": "id", "type": "int"}, {"name": "name", "type": "string"}, {"name": "score", "type": "float"},
    {"name": "gone", "type": {"type": "array", "items": {"type": "map", "values": "string"}}},
    {"name": "tier", "type": {"type": "enum", "name": "Tier", "symbols": ["FREE", "PRO", "LEGACY"]}},
    {"name": "blob", "type": "string"},
    {"name": "ref", "type": ["null", "long"]}]}
V2 = {"type": "record", "name": "User", "namespace": "app", "fields": [
    {"name": "id", "type": "long"}, {"name": "name", "type": "string"}, {"name": "score", "type": "double"},
    {"name": "tier", "type": {"type": "enum", "name": "Tier", "symbols": ["FREE", "PRO", "GOLD"],
                              "default": "FREE"}},
    {"name": "blob", "type": "bytes"},
    {"name": "ref", "type": ["null", "long", "string"]},
    {"name": "email", "type": ["null", "string"], "default": None},
    {"name": "tags", "type": {"type": "array", "items": "string"}, "default": ["new"]},
    {"name": "home", "type": {"type": "record", "name": "Addr", "fields": [
        {"name": "city", "type": "string"}, {"name": "zip", "type": "int"}]},
     "default": {"city": "Paris", "zip": 75001}}]}


def serialize(client, schema: dict, records: list, topic: str = "users") -> list[bytes]:
    serializer = AvroSerializer(client, json.dumps(schema), conf={"auto.register.schemas": True})
    ctx = SerializationContext(topic, MessageField.VALUE)
    return [serializer(r, ctx) for r in records]


def test_two_writer_versions_resolve_into_the_latest_reader_schema(mock_registry):
    old = [{"id": 1, "name": "ann", "score": 0.5, "gone": [{"k": "v"}], "tier": "LEGACY", "blob": "x",
            "ref": 3}, {"id": -2, "name": "bob", "score": 2.25, "gone": [], "tier": "PRO", "blob": "",
                        "ref": None}]
    new = [{"id": 2 ** 40, "name": "cy", "score": 1e300, "tier": "GOLD", "blob": b"\xff\x00",
            "ref": "r-1", "email": "c@x", "tags": [], "home": {"city": "Oslo", "zip": 150}}]
    values = serialize(mock_registry, V1, old) + serialize(mock_registry, V2, new) + serialize(mock_registry, V1, old[:1])
    fmt = Avro(mock_registry).bind(["users"], False, 1000)
    assert fmt.subject == "users-value"
    out = fmt.decode(pa.array(values, pa.binary()))
    out.validate(full=True)
    deserializer = AvroDeserializer(mock_registry, json.dumps(V2))
    ctx = SerializationContext("users", MessageField.VALUE)
    expected = [deserializer(v, ctx) for v in values]
    got = out.to_pylist()
    for row in got:
        row["ref"] = row["ref"]  # dense union: the branch's value
    assert got == expected
    assert got[0]["tier"] == "FREE"  # LEGACY is not in the reader's enum: its default
    assert got[0]["tags"] == ["new"] and got[0]["home"] == {"city": "Paris", "zip": 75001}
    assert out.type.field("id").type == pa.int64() and out.type.field("blob").type == pa.binary()


def test_a_given_reader_schema_reads_every_writer_version(mock_registry):
    reader = {"type": "record", "name": "User", "namespace": "app", "fields": [
        {"name": "score", "type": "double"}, {"name": "name", "type": "bytes"},
        {"name": "ref", "type": ["null", "string", "long"]}]}
    values = serialize(mock_registry, V1, [{"id": 1, "name": "ann", "score": 0.5, "gone": [], "tier": "PRO",
                                            "blob": "x", "ref": 9}])
    out = Avro(mock_registry, reader_schema=json.dumps(reader)).decode(pa.array(values, pa.binary()))
    assert out.to_pylist() == [{"score": 0.5, "name": b"ann", "ref": 9}]


@pytest.mark.parametrize("writer,reader,value,expected", [
    ("int", "long", 5, 5), ("int", "float", -3, -3.0), ("int", "double", 2 ** 31 - 1, 2 ** 31 - 1),
    ("long", "float", 2 ** 20, 2.0 ** 20), ("long", "double", -(2 ** 40), -(2.0 ** 40)),
    ("float", "double", 0.5, 0.5), ("string", "bytes", "é", "é".encode()), ("bytes", "string", b"ok", "ok"),
    ("long", ["null", "long"], 7, 7), (["null", "int"], "long", 4, 4), (["null", "int"], ["null", "double"], None, None),
])
def test_promotions_and_union_branches_follow_avro_resolution(writer, reader, value, expected):
    fmt = Avro(schema={"type": "record", "name": "R", "fields": [{"name": "v", "type": reader}]})
    w = {"type": "record", "name": "R", "fields": [{"name": "v", "type": writer}]}
    from fastsource.formats.avro import _Planner, _named, _parse

    parsed = _parse(w, "writer")
    plan = _Planner(fmt._layout, fmt._reader, _named(parsed)).plan(parsed)
    fmt._plans[0] = plan
    assert fmt.decode(pa.array([encode(w, {"v": value})], pa.binary())).to_pylist() == [{"v": expected}]


def writer_plan(fmt: Avro, writer: dict) -> None:
    """Make `fmt` (schema= mode, id 0) read datums of `writer`."""
    from fastsource.formats.avro import _Planner, _named, _parse

    parsed = _parse(writer, "writer")
    fmt._plans[0] = _Planner(fmt._layout, fmt._reader, _named(parsed)).plan(parsed)


def test_a_writer_union_branch_the_reader_lacks_fails_only_the_records_that_take_it():
    reader = {"type": "record", "name": "R", "fields": [{"name": "v", "type": "long"}]}
    writer = {"type": "record", "name": "R", "fields": [{"name": "v", "type": ["long", "string"]}]}
    fmt = Avro(schema=reader)
    writer_plan(fmt, writer)
    good = encode(writer, {"v": 3})
    assert fmt.decode(pa.array([good], pa.binary())).to_pylist() == [{"v": 3}]
    with pytest.raises(RecordDecodeError, match=r"union branch 1 \(string\)") as info:
        fmt.decode(pa.array([good, encode(writer, {"v": "x"})], pa.binary()))
    assert info.value.row == 1


def test_a_writer_enum_symbol_without_reader_symbol_or_default_is_undecodable():
    reader = {"type": "enum", "name": "E", "symbols": ["A"]}
    writer = {"type": "enum", "name": "E", "symbols": ["A", "B"]}
    fmt = Avro(schema=reader)
    writer_plan(fmt, writer)
    with pytest.raises(RecordDecodeError, match="not in the reader's enum"):
        fmt.decode(pa.array([encode(writer, "A"), encode(writer, "B")], pa.binary()))


def test_a_reader_field_without_default_that_the_writer_lacks_makes_its_id_undecodable(mock_registry):
    reader = dict(V1, fields=V1["fields"] + [{"name": "must", "type": "int"}])
    values = serialize(mock_registry, V1, [{"id": 1, "name": "a", "score": 0, "gone": [], "tier": "PRO",
                                            "blob": "", "ref": None}])
    fmt = Avro(mock_registry, reader_schema=reader)
    with pytest.raises(RecordDecodeError, match="field must of app.User has no default"):
        fmt.decode(pa.array(values, pa.binary()))


def test_without_reader_schema_the_subject_is_the_topic_key_or_value(mock_registry):
    mock_registry.register_schema("users-key", Schema('"string"', "AVRO"))
    serialize(mock_registry, V1, [])  # registers nothing: the serializer registers on first use
    assert Avro(mock_registry).bind(["users"], True, 1000).output_type() == pa.string()
    with pytest.raises(ConfigError, match="topic pattern"):
        Avro(mock_registry).bind(None, False, 1000)


def test_an_unbound_registry_format_refuses_to_decode(mock_registry):
    with pytest.raises(ConfigError, match="bound"):
        Avro(mock_registry).decode(pa.array([b"\x00\x00\x00\x00\x01"], pa.binary()))


# --- bad input -------------------------------------------------------------------------------------

def framed(schema_id: int, body: bytes) -> bytes:
    return b"\x00" + struct.pack(">I", schema_id) + body


@pytest.fixture()
def registered(mock_registry):
    """A format over the mock registry and the id of a record {a: long, s: string, e: enum, u: union}."""
    schema = {"type": "record", "name": "B", "fields": [
        {"name": "a", "type": "long"}, {"name": "s", "type": "string"},
        {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["X", "Y"]}},
        {"name": "u", "type": ["null", "int"]}]}
    schema_id = mock_registry.register_schema("bad-value", Schema(json.dumps(schema), "AVRO"))
    return Avro(mock_registry).bind(["bad"], False, 1000), schema_id


def bad_input_cases(schema_id: int) -> dict[str, tuple[bytes, str]]:
    good = b"\x02\x04hi\x00\x02\x04"  # a=1, s="hi", e=X, u=int 2
    return {
        "not wire format": (b"\x01" + good, "magic byte 0 expected"),
        "shorter than the header": (b"\x00\x00", "shorter than its 5-byte header"),
        "unknown schema id": (framed(schema_id + 1000, good), f"schema id {schema_id + 1000} is not in the registry"),
        "truncated": (framed(schema_id, good[:-1]), "truncated at byte"),
        "varint past 10 bytes": (framed(schema_id, b"\xff" * 11 + b"\x01"), "longer than 10 bytes"),
        "negative length": (framed(schema_id, b"\x02\x01hi"), "negative length -1"),
        "overlong length": (framed(schema_id, b"\x02\x7ehi"), "length 63 at byte 6 is past the 2 bytes left"),
        "union index out of range": (framed(schema_id, b"\x02\x04hi\x00\x06\x04"), "union branch 3 out of range"),
        "enum index out of range": (framed(schema_id, b"\x02\x04hi\x04\x02\x04"), "enum index 2 out of range"),
        "negative enum index": (framed(schema_id, b"\x02\x04hi\x01\x02\x04"), "enum index -1 out of range"),
        "invalid UTF-8": (framed(schema_id, b"\x02\x04\xff\xfe\x00\x02\x04"), "invalid UTF-8"),
        "bytes after the datum": (framed(schema_id, good + b"\x00"), "1 bytes left over"),
        "int out of range": (framed(schema_id, b"\x02\x04hi\x00\x02\xff\xff\xff\xff\x1f"), "out of the 32-bit range"),
    }


@pytest.mark.parametrize("case", list(bad_input_cases(0)))
def test_bad_input_is_an_undecodable_record_with_its_reason(registered, case):
    fmt, schema_id = registered
    payload, reason = bad_input_cases(schema_id)[case]
    good = framed(schema_id, b"\x02\x04hi\x00\x02\x04")
    assert fmt.decode(pa.array([good], pa.binary())).to_pylist() == [{"a": 1, "s": "hi", "e": "X", "u": 2}]
    with pytest.raises(RecordDecodeError, match=reason) as info:
        fmt.decode(pa.array([good, None, payload, good], pa.binary()))
    assert info.value.row == 2


def test_a_writer_schema_nesting_beyond_max_depth_is_undecodable(mock_registry):
    inner: object = "long"
    for level in range(6):
        inner = {"type": "array", "items": inner}
    writer = {"type": "record", "name": "D", "fields": [{"name": "a", "type": "long"}, {"name": "deep", "type": inner}]}
    reader = {"type": "record", "name": "D", "fields": [{"name": "a", "type": "long"}]}
    schema_id = mock_registry.register_schema("d-value", Schema(json.dumps(writer), "AVRO"))
    fmt = Avro(mock_registry, reader_schema=reader, max_depth=4)
    with pytest.raises(RecordDecodeError, match="deeper than max_depth=4"):
        fmt.decode(pa.array([framed(schema_id, b"\x02\x00")], pa.binary()))
    assert Avro(mock_registry, reader_schema=reader, max_depth=8).decode(
        pa.array([framed(schema_id, b"\x02\x00")], pa.binary())).to_pylist() == [{"a": 1}]


def test_array_counts_larger_than_the_record_can_hold_are_refused():
    fmt = Avro(schema={"type": "array", "items": "long"})
    with pytest.raises(RecordDecodeError, match="block count 1000000000"):
        fmt.decode(pa.array([b"\x80\xa8\xd6\xb9\x07" + b"\x00"], pa.binary()))
    nulls = Avro(schema={"type": "array", "items": "null"})
    assert nulls.decode(pa.array([b"\x06\x00"], pa.binary())).to_pylist() == [[None, None, None]]
    with pytest.raises(RecordDecodeError, match="block count"):
        nulls.decode(pa.array([b"\x80\xa8\xd6\xb9\x07\x00"], pa.binary()))


def test_a_recursive_reader_schema_is_refused():
    linked = {"type": "record", "name": "Node", "fields": [{"name": "next", "type": ["null", "Node"]}]}
    with pytest.raises(ConfigError, match="contains itself"):
        Avro(schema=linked)


@pytest.mark.parametrize("kwargs,match", [
    ({}, "give schema_registry"), ({"schema": "long", "schema_registry": "mock://x"}, "not both"),
    ({"schema": "nope"}, "not a valid Avro schema"), ({"schema": "long", "max_depth": 0}, "max_depth"),
    ({"schema": "long", "errors": "ignore"}, "errors must be one of"),
])
def test_bad_arguments_are_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        Avro(**kwargs)


# --- where a format goes -----------------------------------------------------------------------------

def test_a_bound_format_pickles_and_decodes_in_the_new_process_the_same(mock_registry):
    values = serialize(mock_registry, V1, [{"id": 1, "name": "a", "score": 1, "gone": [], "tier": "PRO",
                                            "blob": "", "ref": 5}], topic="pk")
    fmt = Avro(schema=V1)
    copy = pickle.loads(pickle.dumps(fmt))
    raw = pa.array([values[0][5:]], pa.binary())
    assert copy.decode(raw).to_pylist() == fmt.decode(raw).to_pylist()
    assert copy.output_type() == fmt.output_type()


def emitter_batch(values: list) -> RecordsWithSplitIds:
    n = len(values)
    raw = pa.RecordBatch.from_arrays([
        pa.array(["t"] * n), pa.array([0] * n, pa.int32()), pa.array(range(10, 10 + n), pa.int64()),
        pa.array([0] * n, pa.timestamp("ms", "UTC")), pa.array([0] * n, pa.int8()),
        pa.array([None] * n, pa.binary()), pa.array(values, pa.binary())],
        schema=KafkaPartitionSplitReader.raw_schema(False))
    return RecordsWithSplitIds(raw, [], ())


def test_through_the_emitter_a_bad_record_names_its_offset_or_becomes_a_dead_letter():
    schema = {"type": "record", "name": "R", "fields": [{"name": "a", "type": "long"}]}
    values = [encode(schema, {"a": 1}), b"\x83", encode(schema, {"a": 2})]
    raw_schema = KafkaPartitionSplitReader.raw_schema(False)
    from fastsource.formats import Binary

    with pytest.raises(DecodeError, match=r"t\[0\] offset 11 .*truncated") as info:
        KafkaRecordEmitter(raw_schema, Binary(), Avro(schema=schema)).emit(emitter_batch(values), {})
    assert info.value.offset == 11
    emitter = KafkaRecordEmitter(raw_schema, Binary(), Avro(schema=schema, errors="dead_letter"))
    batch = emitter.emit(emitter_batch(values), {})
    assert batch.column("value").to_pylist() == [{"a": 1}, {"a": 2}]
    assert emitter.dead_letters[0].column("offset").to_pylist() == [11]
    assert "truncated" in emitter.dead_letters[0].column("error")[0].as_py()


def test_large_binary_and_empty_batches_decode():
    schema = {"type": "record", "name": "R", "fields": [{"name": "a", "type": "long"}]}
    fmt = Avro(schema=schema)
    values = [encode(schema, {"a": 5}), None]
    assert fmt.decode(pa.array(values, pa.large_binary())).to_pylist() == [{"a": 5}, None]
    empty = fmt.decode(pa.array([], pa.binary()))
    assert len(empty) == 0 and empty.type == fmt.output_type()


# --- found by the sanitizer fuzz run (tests/faults/sanitize_decoders.py) ---------------------------

def test_empty_values_before_any_data_and_fixed_of_size_zero_decode():
    """The inputs on which UBSan saw memcpy/memset given a NULL destination (an empty string, bytes or
    fixed(0) stored before its column had a data buffer; a null record's absent fixed(0)). Under the
    sanitized build this failed; here it pins the values."""
    schema = {"type": "record", "name": "Z", "fields": [
        {"name": "s", "type": "string"}, {"name": "by", "type": "bytes"},
        {"name": "f0", "type": {"type": "fixed", "name": "F0", "size": 0}}]}
    raw = pa.array([b"\x00\x00", None, b"\x02a\x00"], pa.binary())
    out = Avro(schema=schema).decode(raw)
    out.validate(full=True)
    assert out.to_pylist() == [{"s": "", "by": b"", "f0": b""}, None, {"s": "a", "by": b"", "f0": b""}]


@pytest.mark.parametrize("logical, day, found", [("time-millis", 86_400_000, 1570926092),
                                                  ("time-micros", 86_400_000_000, 2 ** 62)])
def test_a_time_of_day_outside_one_day_is_undecodable(logical, day, found):
    """Arrow's time32/time64 hold 0 <= t < 24 h; the decoder used to store any int, giving an array that
    fails validate(full=True) (found with time-millis 1570926092)."""
    kind = "int" if logical == "time-millis" else "long"
    fmt = Avro(schema={"type": kind, "logicalType": logical})
    good = fmt.decode(pa.array([encode("long", 0), encode("long", day - 1)], pa.binary()))
    good.validate(full=True)
    assert len(good) == 2
    for value in (day, -1, found):
        with pytest.raises(RecordDecodeError, match=f"time of day {value} at byte 0 is outside one day") as info:
            fmt.decode(pa.array([encode("long", 5), encode("long", value)], pa.binary()))
        assert info.value.row == 1


@pytest.mark.parametrize("precision", [4, 38, 39, 76])
def test_a_decimal_with_more_digits_than_its_precision_is_undecodable(precision):
    """A decimal's bytes may hold more digits than its precision; Arrow's decimal128/256 may not (the
    array failed validate(full=True)). ±(10**p - 1) is read, ±10**p is an undecodable record."""
    schema = {"type": "bytes", "logicalType": "decimal", "precision": precision, "scale": 2}
    fmt = Avro(schema=schema)

    def datum(unscaled: int) -> bytes:
        size = (unscaled.bit_length() + 8) // 8
        return encode("bytes", unscaled.to_bytes(size, "big", signed=True))

    limit = 10 ** precision
    out = fmt.decode(pa.array([datum(limit - 1), datum(-(limit - 1)), datum(0)], pa.binary()))
    out.validate(full=True)
    wide = decimal.Context(prec=100)
    assert out.to_pylist() == [decimal.Decimal(v).scaleb(-2, wide) for v in (limit - 1, 1 - limit, 0)]
    for unscaled in (limit, -limit):
        with pytest.raises(RecordDecodeError, match=f"more digits than its precision {precision}"):
            fmt.decode(pa.array([datum(unscaled)], pa.binary()))


def test_zero_byte_array_items_are_bounded_per_record_not_per_block():
    """Blocks of nulls cost no input bytes: 3 bytes announce 65536 of them. A record may hold at most
    65536 in all its blocks (it could ask for billions, and a reader's defaults fill each item)."""
    nulls = Avro(schema={"type": "array", "items": "null"})
    block = b"\x80\x80\x08"  # 65536 items
    assert len(nulls.decode(pa.array([block + b"\x00"], pa.binary()))[0].as_py()) == 65536
    with pytest.raises(RecordDecodeError, match="block count 1 at byte 4 takes the record past 65536"):
        nulls.decode(pa.array([block + b"\x02\x00"], pa.binary()))
    with pytest.raises(RecordDecodeError, match="past 65536 array or map items of no bytes"):
        nulls.decode(pa.array([block * 1000 + b"\x00"], pa.binary()))
    # The limit is per record: the next record starts again from zero.
    out = nulls.decode(pa.array([block + b"\x00", block + b"\x00"], pa.binary()))
    assert [len(v) for v in out.to_pylist()] == [65536, 65536]
