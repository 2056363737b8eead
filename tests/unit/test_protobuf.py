"""fastsource.formats.Protobuf: the compiled decoder against protobuf's own parsing (field by field),
Confluent's framing through confluent-kafka's serializer and mock registry, protobuf's rules (last
value wins, oneof, packed and unpacked, unknown fields), and every kind of bad input."""
from __future__ import annotations

import datetime
import importlib.util
import pickle
import struct
from pathlib import Path

import pyarrow as pa
import pytest
from confluent_kafka.schema_registry import Schema
from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from hypothesis import given, settings
from hypothesis import strategies as st

from fastsource.errors import ConfigError
from fastsource.formats import RecordDecodeError
from fastsource.formats.protobuf import Protobuf

_spec = importlib.util.spec_from_file_location(
    "protobuf_fixtures", Path(__file__).parent.parent / "faults" / "protobuf_fixtures.py")
fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fixtures)
pb = fixtures.messages()


def rows(array: pa.Array) -> list:
    out = []
    for row in array.to_pylist():
        if row is not None:
            row = fixtures.fix_row(row)
            row["m"] = dict(row["m"])
            row["mi"] = dict(row["mi"])
        out.append(row)
    return out


def full_message() -> "pb.All":
    message = pb.All(
        d=1.5, f=2.5, i64=-5, u64=2 ** 64 - 1, i32=-7, f64=2 ** 64 - 2, f32=2 ** 32 - 1, b=True, s="hé ✓",
        by=b"\x00\xff", u32=2 ** 32 - 1, c=pb.NEG, sf32=-3, sf64=-(2 ** 63), si32=-(2 ** 31), si64=2 ** 63 - 1,
        inner=pb.Inner(x=3, ys=["a", "b"]), inners=[pb.Inner(x=1), pb.Inner(ys=["z"])], nums=[1, -2, 3],
        strs=["p", ""], m={"k": 5, "j": -1}, mi={7: pb.Inner(x=8), -1: pb.Inner()}, ci=4, opt=0,
        colors=[pb.RED, pb.BLUE], ds=[0.25, -1e300], deep=pb.Deep(inner=pb.Inner(x=-1)))
    message.ts.FromDatetime(datetime.datetime(2024, 1, 2, 3, 4, 5, 678901))
    message.dur.FromNanoseconds(-1_500_000_001)
    message.w64.value = 0  # present, holding its zero
    message.wb.value = True
    return message


def test_every_field_type_decodes_as_protobuf_parses_it():
    messages = [full_message(), pb.All(), pb.All(cs="x", ws=pb.All().ws.__class__(value="w")),
                pb.All(inner=pb.Inner())]
    raw = pa.array([m.SerializeToString() for m in messages] + [None], pa.binary())
    fmt = Protobuf(pb.All)
    out = fmt.decode(raw)
    out.validate(full=True)
    assert out.type == fmt.output_type()
    expected = [fixtures.as_row(pb.All.FromString(m.SerializeToString())) for m in messages]
    assert rows(out)[:-1] == expected
    assert rows(out)[-1] is None
    assert rows(out)[1]["inner"] is None and rows(out)[3]["inner"] == {"x": 0, "ys": []}
    assert rows(out)[1]["opt"] is None and rows(out)[0]["opt"] == 0  # proto3 optional: presence
    assert rows(out)[1]["c"] == "RED" and rows(out)[1]["s"] == ""  # proto3 defaults


def test_the_arrow_types_follow_the_mapping():
    t = Protobuf(pb.All).output_type()
    assert t.field("c").type == pa.dictionary(pa.int32(), pa.string())
    assert t.field("ts").type == pa.timestamp("ns", "UTC") and t.field("ts").nullable
    assert t.field("dur").type == pa.duration("ns")
    assert t.field("w64").type == pa.int64() and t.field("w64").nullable
    assert t.field("i64").type == pa.int64() and not t.field("i64").nullable
    assert t.field("u64").type == pa.uint64() and t.field("f32").type == pa.uint32()
    assert t.field("cs").nullable and t.field("ci").nullable and t.field("inner").nullable
    assert t.field("m").type == pa.map_(pa.string(), pa.field("value", pa.int64(), False))
    assert t.field("nums").type == pa.list_(pa.field("item", pa.int64(), False))


messages_strategy = st.builds(
    lambda **kw: pb.All(**kw), i64=st.integers(-2 ** 63, 2 ** 63 - 1), u64=st.integers(0, 2 ** 64 - 1),
    si32=st.integers(-2 ** 31, 2 ** 31 - 1), s=st.text(max_size=12), f=st.floats(width=32, allow_nan=False),
    nums=st.lists(st.integers(-2 ** 63, 2 ** 63 - 1), max_size=5), strs=st.lists(st.text(max_size=3), max_size=3),
    m=st.dictionaries(st.text(max_size=3), st.integers(-2 ** 63, 2 ** 63 - 1), max_size=3),
    c=st.sampled_from([pb.RED, pb.GREEN, pb.BLUE, pb.NEG]))


@settings(max_examples=60, deadline=None)
@given(st.lists(messages_strategy, max_size=20))
def test_random_messages_decode_as_protobuf_parses_them(messages):
    raw = pa.array([m.SerializeToString() for m in messages], pa.binary())
    assert rows(Protobuf(pb.All).decode(raw)) == [fixtures.as_row(m) for m in messages]


def test_protobuf_rules_last_value_wins_oneof_packed_and_unknown_fields():
    first = pb.All(i64=1, s="first", cs="a").SerializeToString()
    second = pb.All(i64=2, s="second", ci=9).SerializeToString()
    unpacked = b"".join(b"\xb0\x01" + bytes([v]) for v in (1, 2, 3))  # field 22 as three varints
    unknown = b"\xf8\x07\x05" + b"\xfa\x07\x02hi" + b"\xfb\x07\x08\x01\xfc\x07"  # 127: varint, bytes, group
    payload = first + second + unpacked + unknown
    assert rows(Protobuf(pb.All).decode(pa.array([payload], pa.binary())))[0] == \
        fixtures.as_row(pb.All.FromString(payload))
    got = rows(Protobuf(pb.All).decode(pa.array([payload], pa.binary())))[0]
    assert (got["i64"], got["s"], got["cs"], got["ci"], got["nums"]) == (2, "second", None, 9, [1, 2, 3])


def test_a_descriptor_works_as_the_message():
    raw = pa.array([full_message().SerializeToString()], pa.binary())
    assert Protobuf(pb.All.DESCRIPTOR).decode(raw).equals(Protobuf(pb.All).decode(raw))


def test_confluent_framing_decodes_as_the_protobuf_deserializer_reads_it(mock_registry):
    serializer = ProtobufSerializer(pb.All, mock_registry, {"use.deprecated.format": False})
    ctx = SerializationContext("pbt", MessageField.VALUE)
    messages = [full_message(), pb.All(s="x"), pb.All()]
    values = [serializer(m, ctx) for m in messages]
    assert values[0][5:7] == b"\x02\x04"  # All is the file's third message: index array [2]
    inner_serializer = ProtobufSerializer(pb.Inner, mock_registry, {"use.deprecated.format": False})
    inner_value = inner_serializer(pb.Inner(x=5), SerializationContext("pbi", MessageField.VALUE))
    deserializer = ProtobufDeserializer(pb.All, {"use.deprecated.format": False})
    fmt = Protobuf(pb.All, schema_registry=mock_registry).bind(["pbt"], False, 1000)
    out = fmt.decode(pa.array(values, pa.binary()))
    assert rows(out) == [fixtures.as_row(deserializer(v, ctx)) for v in values]
    inner = Protobuf(pb.Inner, schema_registry=mock_registry).decode(pa.array([inner_value], pa.binary()))
    assert inner.to_pylist() == [{"x": 5, "ys": []}]


def bad_cases(schema_id: int, avro_id: int) -> dict[str, tuple[bytes, str]]:
    good = pb.All(i64=1, s="ok").SerializeToString()
    f = fixtures.framed
    return {
        "not wire format": (b"\x01" + good, "magic byte 0 expected"),
        "unknown schema id": (f(schema_id + 500, good), f"schema id {schema_id + 500} is not in the registry"),
        "not a protobuf schema": (f(avro_id, good), "is a AVRO schema, not Protobuf"),
        "bad message indexes": (f(schema_id, good, b"\x7f"), "invalid message-index array"),
        "truncated": (f(schema_id, good[:-1]), "length 2 at byte 9 is past the 1 bytes left"),
        "varint past 10 bytes": (f(schema_id, b"\x18" + b"\xff" * 10 + b"\x01"), "longer than 10 bytes"),
        "overlong length": (f(schema_id, b"\x4a\x7fab"), "length 127 at byte 7 is past"),
        "field number 0": (f(schema_id, b"\x00\x01"), "field number 0"),
        "invalid wire type": (f(schema_id, b"\x0f\x01"), "invalid wire type 7"),
        "invalid UTF-8": (f(schema_id, b"\x4a\x02\xc3\x28"), "invalid UTF-8"),
        "unknown enum value": (f(schema_id, b"\x70\x09"), "enum value 9"),
        "end group without start": (f(schema_id, b"\xfc\x07"), "end-group tag of field 127"),
        "nesting beyond max_depth": (f(schema_id, b"\xfb\x07" * 70), "deeper than max_depth=64"),
        "message set twice": (f(schema_id, b"\xa2\x01\x00\xa2\x01\x00"), "message field 20 is set twice"),
    }


@pytest.mark.parametrize("case", list(bad_cases(0, 0)))
def test_bad_input_is_an_undecodable_record_with_its_reason(mock_registry, case):
    serializer = ProtobufSerializer(pb.All, mock_registry, {"use.deprecated.format": False})
    good = serializer(pb.All(i64=1, s="ok"), SerializationContext("bad", MessageField.VALUE))
    schema_id = struct.unpack(">I", good[1:5])[0]
    avro_id = mock_registry.register_schema("other-value", Schema('"long"', "AVRO"))
    payload, reason = bad_cases(schema_id, avro_id)[case]
    fmt = Protobuf(pb.All, schema_registry=mock_registry)
    assert fmt.decode(pa.array([good], pa.binary())).to_pylist()[0]["s"] == "ok"
    with pytest.raises(RecordDecodeError, match=reason) as info:
        fmt.decode(pa.array([good, None, payload, good], pa.binary()))
    assert info.value.row == 2


def test_a_recursive_message_is_refused():
    with pytest.raises(ConfigError, match="contains itself"):
        Protobuf(pb.Recursive)


def test_messages_nested_deeper_than_max_depth_are_refused_up_front():
    with pytest.raises(ConfigError, match="deeper than max_depth=2"):
        Protobuf(pb.All, max_depth=2)


def test_the_format_pickles_and_decodes_the_same():
    fmt = Protobuf(pb.All)
    raw = pa.array([full_message().SerializeToString()], pa.binary())
    assert pickle.loads(pickle.dumps(fmt)).decode(raw).equals(fmt.decode(raw))


@pytest.mark.parametrize("kwargs,match", [
    ({"message": 3}, "generated message class"), ({"message": None}, "generated message class"),
    ({"message": "All"}, "generated message class"), ({"max_depth": 0}, "max_depth"),
    ({"errors": "skip"}, "errors must be one of"),
])
def test_bad_arguments_are_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        Protobuf(**{"message": pb.All, **kwargs})
