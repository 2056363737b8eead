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
    assert types["m"] == pa.map_(pa.string(), pa.float64()) and types["fx"] == pa.binary(4)
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
    raws, raw_keys = [], []
    for key, value in zip(keys, values):
        raw_key = key_ser(key, SerializationContext(topic, MessageField.KEY))
        raw = AvroSerializer(client, json.dumps(EVERY_TYPE))(value, SerializationContext(topic, MessageField.VALUE))
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
