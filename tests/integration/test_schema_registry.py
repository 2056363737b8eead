"""Avro and Protobuf topics from a real Schema Registry (the session's `schema_registry`) and the real
broker: records produced with confluent-kafka's serializers read by fastsource equal, record for record,
what confluent-kafka's deserializers return; registry outages, refusals and bad records fail as
documented."""
from __future__ import annotations

import datetime as dt
import http.server
import json
import struct
import threading
import uuid
from decimal import Decimal
from typing import Any, Callable, Optional

import pyarrow as pa
import pytest

pytest.importorskip("confluent_kafka.schema_registry.avro", reason="needs fastsource[avro]")

import fastsource as fs  # noqa: E402
from fastsource.errors import DecodeError, SchemaRegistryError  # noqa: E402

from confluent_kafka.schema_registry import SchemaRegistryClient  # noqa: E402
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer  # noqa: E402
from confluent_kafka.serialization import MessageField, SerializationContext  # noqa: E402

UTC = dt.timezone.utc

# Every Avro type and logical type fastsource maps (issue 17, item 1), nested where Avro allows it.
EVERY_TYPE = {
    "type": "record", "name": "Every", "namespace": "fastsource.test",
    "fields": [
        {"name": "b", "type": "boolean"},
        {"name": "i", "type": "int"},
        {"name": "l", "type": "long"},
        {"name": "f", "type": "float"},
        {"name": "d", "type": "double"},
        {"name": "by", "type": "bytes"},
        {"name": "s", "type": "string"},
        {"name": "rec", "type": {"type": "record", "name": "Inner", "fields": [
            {"name": "x", "type": "int"}, {"name": "y", "type": ["null", "string"]}]}},
        {"name": "e", "type": {"type": "enum", "name": "Color", "symbols": ["RED", "GREEN", "BLUE"]}},
        {"name": "arr", "type": {"type": "array", "items": "long"}},
        {"name": "recs", "type": {"type": "array", "items": "Inner"}},
        {"name": "m", "type": {"type": "map", "values": "double"}},
        {"name": "fx", "type": {"type": "fixed", "name": "Four", "size": 4}},
        {"name": "opt", "type": ["null", "string"]},
        {"name": "optrec", "type": ["null", "Inner"]},
        {"name": "u", "type": ["null", "long", "string"]},
        {"name": "date", "type": {"type": "int", "logicalType": "date"}},
        {"name": "tmil", "type": {"type": "int", "logicalType": "time-millis"}},
        {"name": "tmic", "type": {"type": "long", "logicalType": "time-micros"}},
        {"name": "tsmil", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "tsmic", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "ltsmil", "type": {"type": "long", "logicalType": "local-timestamp-millis"}},
        {"name": "ltsmic", "type": {"type": "long", "logicalType": "local-timestamp-micros"}},
        {"name": "dec", "type": {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 3}},
        {"name": "decfx", "type": {"type": "fixed", "name": "Dec16", "size": 16, "logicalType": "decimal",
                                   "precision": 30, "scale": 5}},
        {"name": "id", "type": {"type": "string", "logicalType": "uuid"}},
    ],
}

def every_record(i: int) -> dict:
    """A varied record: negative and large numbers, empty and non-empty collections, nulls, unicode."""
    sign = -1 if i % 2 else 1
    return {
        "b": i % 3 == 0, "i": sign * (i * 7919 % 2_000_000_000), "l": sign * i * 1_000_000_007,
        "f": i / 7.0, "d": sign * i / 3.0, "by": bytes([i % 256]) * (i % 5), "s": f"s{i}-é☃" * (i % 3),
        "rec": {"x": i, "y": None if i % 4 == 0 else f"y{i}"},
        "e": ["RED", "GREEN", "BLUE"][i % 3],
        "arr": list(range(i % 4)), "recs": [{"x": j, "y": str(j)} for j in range(i % 3)],
        "m": {f"k{j}": j / 2 for j in range(i % 3)},
        "fx": struct.pack(">i", i),
        "opt": None if i % 2 else f"o{i}",
        "optrec": None if i % 3 else {"x": -i, "y": None},
        "u": [None, i * 11, f"u{i}"][i % 3],
        "date": dt.date(1970, 1, 1) + dt.timedelta(days=sign * i * 13),
        "tmil": dt.time(i % 24, i % 60, i % 60, (i % 1000) * 1000),
        "tmic": dt.time(i % 24, (i * 7) % 60, (i * 3) % 60, i * 37 % 1_000_000),
        "tsmil": dt.datetime(2024, 1, 1, tzinfo=UTC) + dt.timedelta(milliseconds=sign * i * 86_400_123),
        "tsmic": dt.datetime(2024, 1, 1, tzinfo=UTC) + dt.timedelta(microseconds=sign * i * 3_600_000_001),
        "ltsmil": dt.datetime(2024, 1, 1) + dt.timedelta(milliseconds=i * 1_001),
        "ltsmic": dt.datetime(2024, 1, 1) + dt.timedelta(microseconds=i * 1_000_001),
        "dec": Decimal(sign * i * 12_345).scaleb(-3),
        "decfx": Decimal(sign * i * 10 ** 20 + 12_345).scaleb(-5),
        "id": str(uuid.UUID(int=i * 0x1234567890ABCDEF)),
    }


def _plain(value: Any) -> Any:
    """A deserialized value in the terms of Arrow's to_pylist: UUIDs as their text."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _rows(column: pa.ChunkedArray | pa.Array) -> list:
    """A column's values as Python objects, maps as dicts (as the deserializers return them)."""
    return [r["c"] for r in pa.table({"c": column}).to_pylist(maps_as_pydicts="strict")]


def _client(url: str) -> SchemaRegistryClient:
    return SchemaRegistryClient({"url": url})


def _produce(producer, topic: str, values: list, serialize_value: Callable, serialize_key=None,
             keys: Optional[list] = None) -> list[bytes]:
    """Produce `values` (and `keys`) serialized as Confluent's serializers do; returns the raw values."""
    raws = []
    for n, value in enumerate(values):
        raw = serialize_value(value, SerializationContext(topic, MessageField.VALUE))
        key = None
        if serialize_key is not None:
            key = serialize_key(keys[n], SerializationContext(topic, MessageField.KEY))
        producer.produce(topic, value=raw, key=key)
        raws.append(raw)
    producer.flush(30)
    return raws


def _expected(raws: list[bytes], topic: str, deserialize: Callable, field=MessageField.VALUE) -> list:
    return [_plain(deserialize(raw, SerializationContext(topic, field))) for raw in raws]


def _source(bootstrap: str, topic: str, **kwargs) -> fs.KafkaSource:
    kwargs.setdefault("stopping_offsets", fs.OffsetsInitializer.latest())
    return fs.KafkaSource(bootstrap, topics=[topic], **kwargs)


def test_every_avro_type_equals_what_confluents_deserializer_returns(bootstrap, schema_registry,
                                                                     make_topic, producer):
    """read_all of an Avro topic holding every type and logical type: each column value equals what
    AvroDeserializer returns for that record; the Arrow types are those issue 17 names."""
    topic = make_topic(partitions=2)
    client = _client(schema_registry)
    serializer = AvroSerializer(client, json.dumps(EVERY_TYPE))
    values = [every_record(i) for i in range(300)]
    raws = _produce(producer, topic, values, serializer)
    expected = _expected(raws, topic, AvroDeserializer(client))
    table = _source(bootstrap, topic,
                    value_format=fs.formats.Avro(schema_registry=schema_registry)).read_all()
    assert table.num_rows == len(values)
    by_raw = dict(zip(raws, expected))
    got = _rows(table.column("value"))
    # the same records, compared by their raw bytes (partitions interleave)
    raw_table = _source(bootstrap, topic).read_all()
    assert [by_raw[r] for r in raw_table.column("value").to_pylist()] == got
    value_type = table.schema.field("value").type
    types = {value_type.field(n).name: value_type.field(n).type for n in range(value_type.num_fields)}
    assert types["i"] == pa.int32() and types["f"] == pa.float32() and types["by"] == pa.binary()
    assert types["e"] == pa.dictionary(pa.int32(), pa.string())
    assert (types["m"].key_type, types["m"].item_type) == (pa.string(), pa.float64())
    assert types["fx"] == pa.binary(4)
    assert types["u"].id == pa.dense_union([pa.field("a", pa.int64())]).id
    assert types["date"] == pa.date32() and types["tmil"] == pa.time32("ms") and types["tmic"] == pa.time64("us")
    assert types["tsmil"] == pa.timestamp("ms", tz="UTC") and types["tsmic"] == pa.timestamp("us", tz="UTC")
    assert types["ltsmil"] == pa.timestamp("ms") and types["ltsmic"] == pa.timestamp("us")
    assert types["dec"] == pa.decimal128(12, 3) and types["decfx"] == pa.decimal128(30, 5)
    assert types["id"] == pa.string() and types["opt"] == pa.string()
    assert value_type.field("opt").nullable and not value_type.field("s").nullable


V1 = {"type": "record", "name": "Evolving", "fields": [
    {"name": "id", "type": "long"},
    {"name": "amount", "type": "int"},
    {"name": "note", "type": "string"},
    {"name": "dropped", "type": "boolean"},
    {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["A", "B", "C"]}},
]}
V2 = {"type": "record", "name": "Evolving", "fields": [
    {"name": "id", "type": "long"},
    {"name": "amount", "type": "double"},                                   # int -> double
    {"name": "note", "type": "bytes"},                                      # string -> bytes
    {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["A", "B", "OTHER"],
                              "default": "OTHER"}},                         # C -> enum default
    {"name": "added", "type": ["null", "string"], "default": None},         # new with a default
    {"name": "score", "type": "float", "default": 1.5},
]}


def _evolving(i: int, version: int) -> dict:
    if version == 1:
        return {"id": i, "amount": i * 3 - 50, "note": f"n{i}", "dropped": bool(i % 2),
                "kind": ["A", "B", "C"][i % 3]}
    return {"id": i, "amount": i / 4, "note": b"\x00n%d" % i, "kind": ["A", "B", "OTHER"][i % 3],
            "added": None if i % 2 else f"a{i}", "score": i / 8}


def test_two_schema_versions_in_one_topic_read_as_the_latest(bootstrap, schema_registry, make_topic,
                                                             producer):
    """A topic written with two versions of a subject (promotions, a removed field, an added field
    with a default, an enum default) reads as the latest version; each record equals what
    AvroDeserializer returns with that version as its reader schema."""
    topic = make_topic()
    client = _client(schema_registry)
    raws = []
    for version, schema in ((1, V1), (2, V2)):
        serializer = AvroSerializer(client, json.dumps(schema))
        raws += _produce(producer, topic, [_evolving(i, version) for i in range(100 * version, 100 * version + 80)],
                         serializer)
    # the registry's compatibility check would refuse nothing here (Apicurio's default is none)
    expected = _expected(raws, topic, AvroDeserializer(client, json.dumps(V2)))
    table = _source(bootstrap, topic, value_format=fs.formats.Avro(schema_registry=schema_registry)).read_all()
    assert _rows(table.column("value")) == expected
    assert [f.name for f in table.schema.field("value").type] == ["id", "amount", "note", "kind", "added", "score"]
    kinds = [r["kind"] for r in expected[:80]]
    assert "OTHER" in kinds  # C written by v1 became the enum's default


KEY = {"type": "record", "name": "Key", "fields": [{"name": "tenant", "type": "string"},
                                                    {"name": "n", "type": "long"}]}


def test_avro_keys_and_values_each_from_their_subject(bootstrap, schema_registry, make_topic, producer):
    topic = make_topic(partitions=3)
    client = _client(schema_registry)
    values = [every_record(i) for i in range(90)]
    keys = [{"tenant": f"t{i % 4}", "n": i} for i in range(90)]
    key_ser = AvroSerializer(client, json.dumps(KEY))
    value_ser = AvroSerializer(client, json.dumps(EVERY_TYPE))
    raws, raw_keys = [], []
    for key, value in zip(keys, values):
        raw_key = key_ser(key, SerializationContext(topic, MessageField.KEY))
        raw = value_ser(value, SerializationContext(topic, MessageField.VALUE))
        producer.produce(topic, key=raw_key, value=raw)
        raws.append(raw)
        raw_keys.append(raw_key)
    producer.flush(30)
    table = _source(bootstrap, topic, key_format=fs.formats.Avro(schema_registry=schema_registry),
                    value_format=fs.formats.Avro(schema_registry=schema_registry)).read_all()
    deserialize = AvroDeserializer(client)
    expected = {json.dumps(_plain(deserialize(k, SerializationContext(topic, MessageField.KEY))), sort_keys=True):
                _plain(deserialize(v, SerializationContext(topic, MessageField.VALUE)))
                for k, v in zip(raw_keys, raws)}
    got_keys, got_values = _rows(table.column("key")), _rows(table.column("value"))
    assert len(got_keys) == 90
    for key, value in zip(got_keys, got_values):
        assert expected[json.dumps(key, sort_keys=True)] == value


def test_a_restored_stream_reads_each_avro_record_once(bootstrap, schema_registry, make_topic, producer,
                                                       tmp_path):
    """A checkpointed stream closed after its first batch and restored from the checkpoint reads the
    rest: every record exactly once, decoded equal to AvroDeserializer's result."""
    topic = make_topic(partitions=2)
    client = _client(schema_registry)
    raws = _produce(producer, topic, [every_record(i) for i in range(400)],
                    AvroSerializer(client, json.dumps(EVERY_TYPE)))
    by_raw = dict(zip(raws, _expected(raws, topic, AvroDeserializer(client))))
    raw_by_offset = {(r["partition"], r["offset"]): r["value"]
                     for r in _source(bootstrap, topic).read_all().to_pylist()}

    def source():
        return _source(bootstrap, topic, value_format=fs.formats.Avro(schema_registry=schema_registry),
                       batch_limits=fs.BatchLimits(max_rows=50))

    seen = []
    with source().open(checkpoint_dir=tmp_path) as stream:
        first = next(stream)
        stream.checkpoint()
    seen.append(first)
    with source().open(checkpoint_dir=tmp_path) as stream:
        seen.extend(stream)
    table = pa.Table.from_batches(seen)
    coordinates = list(zip(table.column("partition").to_pylist(), table.column("offset").to_pylist()))
    assert sorted(coordinates) == sorted(raw_by_offset)  # each once
    for where, value in zip(coordinates, _rows(table.column("value"))):
        assert value == by_raw[raw_by_offset[where]]


def test_the_cli_reads_avro_with_the_registry_from_the_environment(bootstrap, schema_registry, make_topic,
                                                                   producer, tmp_path):
    """`fastsource read --value-format avro` with FASTSOURCE_SCHEMA_REGISTRY: the Parquet file holds
    what AvroDeserializer returns; `--schema-registry` gives the same file."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import pyarrow.parquet as pq

    topic = make_topic()
    client = _client(schema_registry)
    raws = _produce(producer, topic, [_evolving(i, 2) for i in range(120)], AvroSerializer(client, json.dumps(V2)))
    expected = _expected(raws, topic, AvroDeserializer(client))
    cli = [str(Path(sys.executable).parent / "fastsource"), "read", "-b", bootstrap, "-t", topic,
           "--value-format", "avro", "--no-progress"]
    env = {**os.environ, "FASTSOURCE_SCHEMA_REGISTRY": schema_registry}
    done = subprocess.run(cli + ["-o", str(tmp_path / "env.parquet")], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert _rows(pq.read_table(tmp_path / "env.parquet").column("value")) == expected
    env.pop("FASTSOURCE_SCHEMA_REGISTRY")
    done = subprocess.run(cli + ["--schema-registry", schema_registry, "-o", str(tmp_path / "flag.parquet")],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert _rows(pq.read_table(tmp_path / "flag.parquet").column("value")) == expected


def _framed(schema_id: int, payload: bytes) -> bytes:
    return b"\x00" + struct.pack(">I", schema_id) + payload


def _one_avro_record(producer, topic: str, schema_registry: str) -> tuple[bytes, int]:
    """Produce one valid record; returns it and its schema id."""
    raw = _produce(producer, topic, [_evolving(1, 1)], AvroSerializer(_client(schema_registry), json.dumps(V1)))[0]
    return raw, struct.unpack(">I", raw[1:5])[0]


@pytest.mark.parametrize("bad, reason", [
    (b"plain text, not Avro", "magic"),
    (_framed(987_654_321, b"\x02"), "987654321"),
])
def test_a_record_not_in_the_wire_format_or_of_an_unknown_schema_fails_naming_it(
        bad, reason, bootstrap, schema_registry, make_topic, producer):
    """An undecodable record fails the read with a DecodeError naming topic, partition, offset and
    the reason, under errors="raise"; under errors="dead_letter" it is diverted, the rest decoded."""
    topic = make_topic()
    good, _ = _one_avro_record(producer, topic, schema_registry)
    producer.produce(topic, value=bad)
    producer.produce(topic, value=good)
    producer.flush(30)
    with pytest.raises(DecodeError) as raised:
        _source(bootstrap, topic, value_format=fs.formats.Avro(schema_registry=schema_registry)).read_all()
    assert (raised.value.topic, raised.value.partition, raised.value.offset) == (topic, 0, 1)
    assert topic in str(raised.value) and reason in str(raised.value).lower()
    source = _source(bootstrap, topic, value_format=fs.formats.Avro(schema_registry=schema_registry,
                                                                    errors="dead_letter"))
    with source.open() as stream:
        table = pa.Table.from_batches(list(stream), schema=stream.schema)
        dead = stream.dead_letters()
    assert table.column("offset").to_pylist() == [0, 2]
    assert dead.column("offset").to_pylist() == [1] and dead.column("value").to_pylist() == [bad]
    assert reason in dead.column("error")[0].as_py().lower()


def test_an_unreachable_registry_is_waited_out_then_fails_naming_url_and_schema_id(
        bootstrap, schema_registry, make_topic, producer, free_port):
    """No registry on the port (refused connections): the read waits up to broker_timeout_ms, then
    fails with SchemaRegistryError naming the registry's URL and the schema id it needed."""
    topic = make_topic()
    _, schema_id = _one_avro_record(producer, topic, schema_registry)
    closed = f"http://127.0.0.1:{free_port}/apis/ccompat/v7"
    source = _source(bootstrap, topic, broker_timeout_ms=3000,
                     value_format=fs.formats.Avro(schema_registry=closed,
                                                  reader_schema=json.dumps(V1)))
    with pytest.raises(SchemaRegistryError) as raised:
        source.read_all()
    message = str(raised.value)
    assert closed in message and f"schema id {schema_id}" in message and "3000 ms" in message


class _Refusing(http.server.BaseHTTPRequestHandler):
    """Answers every request 401, counting them."""

    requests = 0

    def do_GET(self):  # noqa: N802 (http.server's name)
        type(self).requests += 1
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        body = b'{"error_code": 40101, "message": "Unauthorized"}'
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, *args):
        pass


def test_a_registry_refusing_the_credentials_fails_at_once_without_them(bootstrap, schema_registry,
                                                                       make_topic, producer):
    """HTTP 401: no waiting (one request, far less than the 10-minute outage bound), and neither the
    password nor the user:password pair appears in the error."""
    topic = make_topic()
    _one_avro_record(producer, topic, schema_registry)
    handler = type("Refusing", (_Refusing,), {"requests": 0})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        source = _source(bootstrap, topic, broker_timeout_ms=600_000,
                         value_format=fs.formats.Avro(
                             schema_registry={"url": url, "basic.auth.user.info": "reader:s3cr3t-pw"},
                             reader_schema=json.dumps(V1)))
        with pytest.raises(SchemaRegistryError) as raised:
            source.read_all()
    finally:
        server.shutdown()
        server.server_close()
    message = str(raised.value)
    assert url in message and "401" in message
    assert "s3cr3t-pw" not in message and "reader:" not in message
    assert "s3cr3t-pw" not in repr(raised.value)
    assert handler.requests <= 2


# --- Protobuf -------------------------------------------------------------------------------------

def _every_message_class():
    """A proto3 message with every kind of field issue 17 maps: all scalar types, an enum, a nested
    message, repeated scalars and messages, maps, a oneof, proto3 optional, Timestamp and wrappers."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, timestamp_pb2, wrappers_pb2

    pool = descriptor_pool.Default()
    name = "fastsource/test_every.proto"
    try:
        pool.FindFileByName(name)
    except KeyError:
        F = descriptor_pb2.FieldDescriptorProto
        proto = descriptor_pb2.FileDescriptorProto(
            name=name, package="fastsource.test", syntax="proto3",
            dependency=[timestamp_pb2.DESCRIPTOR.name, wrappers_pb2.DESCRIPTOR.name])
        msg = proto.message_type.add(name="EveryProto")
        color = msg.enum_type.add(name="Color")
        for number, symbol in enumerate(["COLOR_UNSET", "RED", "GREEN"]):
            color.value.add(name=symbol, number=number)
        inner = msg.nested_type.add(name="Inner")
        inner.field.add(name="x", number=1, type=F.TYPE_INT32, label=F.LABEL_OPTIONAL)
        inner.field.add(name="y", number=2, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
        for entry_name, key, value, value_type in (("CountsEntry", F.TYPE_STRING, F.TYPE_INT64, None),
                                                   ("InnersEntry", F.TYPE_INT32, F.TYPE_MESSAGE,
                                                    ".fastsource.test.EveryProto.Inner")):
            entry = msg.nested_type.add(name=entry_name)
            entry.options.map_entry = True
            entry.field.add(name="key", number=1, type=key, label=F.LABEL_OPTIONAL)
            field = entry.field.add(name="value", number=2, type=value, label=F.LABEL_OPTIONAL)
            if value_type:
                field.type_name = value_type
        scalars = [("d", F.TYPE_DOUBLE), ("f", F.TYPE_FLOAT), ("i32", F.TYPE_INT32), ("i64", F.TYPE_INT64),
                   ("u32", F.TYPE_UINT32), ("u64", F.TYPE_UINT64), ("s32", F.TYPE_SINT32),
                   ("s64", F.TYPE_SINT64), ("fx32", F.TYPE_FIXED32), ("fx64", F.TYPE_FIXED64),
                   ("sfx32", F.TYPE_SFIXED32), ("sfx64", F.TYPE_SFIXED64), ("b", F.TYPE_BOOL),
                   ("s", F.TYPE_STRING), ("by", F.TYPE_BYTES)]
        number = 0
        for field_name, kind in scalars:
            number += 1
            msg.field.add(name=field_name, number=number, type=kind, label=F.LABEL_OPTIONAL)
        messages = [("color", F.TYPE_ENUM, ".fastsource.test.EveryProto.Color", F.LABEL_OPTIONAL),
                    ("inner", F.TYPE_MESSAGE, ".fastsource.test.EveryProto.Inner", F.LABEL_OPTIONAL),
                    ("nums", F.TYPE_INT32, None, F.LABEL_REPEATED),
                    ("words", F.TYPE_STRING, None, F.LABEL_REPEATED),
                    ("items", F.TYPE_MESSAGE, ".fastsource.test.EveryProto.Inner", F.LABEL_REPEATED),
                    ("counts", F.TYPE_MESSAGE, ".fastsource.test.EveryProto.CountsEntry", F.LABEL_REPEATED),
                    ("inners", F.TYPE_MESSAGE, ".fastsource.test.EveryProto.InnersEntry", F.LABEL_REPEATED),
                    ("ts", F.TYPE_MESSAGE, ".google.protobuf.Timestamp", F.LABEL_OPTIONAL),
                    ("wi64", F.TYPE_MESSAGE, ".google.protobuf.Int64Value", F.LABEL_OPTIONAL),
                    ("wstr", F.TYPE_MESSAGE, ".google.protobuf.StringValue", F.LABEL_OPTIONAL),
                    ("wbool", F.TYPE_MESSAGE, ".google.protobuf.BoolValue", F.LABEL_OPTIONAL),
                    ("wdbl", F.TYPE_MESSAGE, ".google.protobuf.DoubleValue", F.LABEL_OPTIONAL)]
        for field_name, kind, type_name, label in messages:
            number += 1
            field = msg.field.add(name=field_name, number=number, type=kind, label=label)
            if type_name:
                field.type_name = type_name
        msg.oneof_decl.add(name="choice")
        for field_name, kind in (("choice_text", F.TYPE_STRING), ("choice_num", F.TYPE_INT64)):
            number += 1
            msg.field.add(name=field_name, number=number, type=kind, label=F.LABEL_OPTIONAL, oneof_index=0)
        msg.oneof_decl.add(name="_maybe")
        number += 1
        msg.field.add(name="maybe", number=number, type=F.TYPE_INT32, label=F.LABEL_OPTIONAL, oneof_index=1,
                      proto3_optional=True)
        pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("fastsource.test.EveryProto"))


def every_message(cls, i: int):
    sign = -1 if i % 2 else 1
    m = cls(d=sign * i / 3, f=i / 8, i32=sign * i * 1000, i64=sign * i * 10 ** 12, u32=i * 7, u64=2 ** 63 + i,
            s32=sign * i, s64=sign * i * 10 ** 10, fx32=i, fx64=i * 3, sfx32=-i, sfx64=sign * i * 5,
            b=i % 2 == 0, s="é☃" * (i % 3), by=bytes([i % 256]) * (i % 4), color=i % 3,
            nums=list(range(i % 5)), words=[f"w{j}" for j in range(i % 3)])
    if i % 3:
        m.inner.x, m.inner.y = i, f"y{i}"
    for j in range(i % 3):
        m.items.add(x=j, y=str(j))
        m.counts[f"k{j}"] = j * i
        m.inners[j].x = -j
    if i % 4:
        m.ts.FromNanoseconds(1_700_000_000_000_000_000 + sign * i * 1_000_000_007)
    if i % 2:
        m.wi64.value, m.wstr.value, m.wbool.value, m.wdbl.value = i, f"w{i}", False, i / 2
    if i % 3 == 1:
        m.choice_text = f"c{i}"
    elif i % 3 == 2:
        m.choice_num = i
    if i % 5:
        m.maybe = 0 if i % 2 else i
    return m


_WRAPPERS = {"google.protobuf.Int64Value", "google.protobuf.StringValue", "google.protobuf.BoolValue",
             "google.protobuf.DoubleValue", "google.protobuf.Int32Value", "google.protobuf.UInt64Value",
             "google.protobuf.UInt32Value", "google.protobuf.FloatValue", "google.protobuf.BytesValue"}


def _proto_value(field, value):
    import pandas as pd

    if field.message_type is not None:
        name = field.message_type.full_name
        if name == "google.protobuf.Timestamp":
            return pd.Timestamp(value.ToNanoseconds(), unit="ns", tz="UTC")
        if name in _WRAPPERS:
            return value.value
        return proto_row(value)
    if field.enum_type is not None:
        return field.enum_type.values_by_number[value].name
    return value


def proto_row(message) -> dict:
    """A deserialized message in the terms issue 17 maps it to: message -> dict, repeated -> list,
    map -> dict, enum -> its name, unset message / oneof member / optional -> None, Timestamp -> ns,
    wrappers -> their value."""
    row = {}
    for field in message.DESCRIPTOR.fields:
        value = getattr(message, field.name)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            row[field.name] = {k: _proto_value(value_field, v) for k, v in value.items()}
        elif (field.is_repeated if hasattr(field, "is_repeated") else field.label == field.LABEL_REPEATED):
            row[field.name] = [_proto_value(field, v) for v in value]
        elif field.has_presence and not message.HasField(field.name):
            row[field.name] = None
        else:
            row[field.name] = _proto_value(field, value)
    return row


def test_every_protobuf_field_kind_equals_what_confluents_deserializer_returns(
        bootstrap, schema_registry, make_topic, producer):
    """read_all of a Protobuf topic (Confluent's wire format, the schema and its imports registered by
    ProtobufSerializer): each row equals the message ProtobufDeserializer returns, mapped as issue 17
    says."""
    from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer

    cls = _every_message_class()
    topic = make_topic(partitions=2)
    client = _client(schema_registry)
    serializer = ProtobufSerializer(cls, client, {"use.deprecated.format": False})
    raws = _produce(producer, topic, [every_message(cls, i) for i in range(300)], serializer)
    deserializer = ProtobufDeserializer(cls, {"use.deprecated.format": False})
    by_raw = {raw: proto_row(deserializer(raw, SerializationContext(topic, MessageField.VALUE)))
              for raw in raws}
    table = _source(bootstrap, topic, value_format=fs.formats.Protobuf(
        message=cls, schema_registry=schema_registry)).read_all()
    raw_values = _source(bootstrap, topic).read_all().column("value").to_pylist()
    assert len(raw_values) == table.num_rows == 300
    assert _rows(table.column("value")) == [by_raw[r] for r in raw_values]
    value_type = table.schema.field("value").type
    assert value_type.field("color").type == pa.dictionary(pa.int32(), pa.string())
    assert value_type.field("ts").type == pa.timestamp("ns", tz="UTC")
    assert value_type.field("wi64").type == pa.int64() and value_type.field("wi64").nullable
    counts = value_type.field("counts").type
    assert (counts.key_type, counts.item_type) == (pa.string(), pa.int64())
    assert value_type.field("u64").type == pa.uint64() and value_type.field("fx32").type == pa.uint32()


def test_the_cli_reads_protobuf_with_a_message_class(bootstrap, schema_registry, make_topic, producer,
                                                     tmp_path):
    """`fastsource read --value-format protobuf --message module:Class --schema-registry URL` writes
    what ProtobufDeserializer returns."""
    import subprocess
    import sys
    from pathlib import Path

    import pyarrow.parquet as pq
    from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer, ProtobufSerializer

    from fastsource.benchmark import bench_pb2, schemas

    topic = make_topic()
    client = _client(schema_registry)
    serializer = ProtobufSerializer(bench_pb2.Wide, client, {"use.deprecated.format": False})
    raws = _produce(producer, topic, [schemas.wide_message(bench_pb2.Wide, i) for i in range(150)], serializer)
    deserializer = ProtobufDeserializer(bench_pb2.Wide, {"use.deprecated.format": False})
    expected = [proto_row(deserializer(r, SerializationContext(topic, MessageField.VALUE))) for r in raws]
    out = tmp_path / "wide.parquet"
    done = subprocess.run([str(Path(sys.executable).parent / "fastsource"), "read", "-b", bootstrap, "-t", topic,
                           "--value-format", "protobuf", "--message", "fastsource.benchmark.bench_pb2:Wide",
                           "--schema-registry", schema_registry, "--no-progress", "-o", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert _rows(pq.read_table(out).column("value")) == expected
