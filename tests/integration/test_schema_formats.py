"""Avro and Protobuf values and keys read from a real broker through the whole source (readers over
both transports, read_all, a restored stream): the formats are bound once per read and travel to the
readers. Registry-framed topics against a real registry are tested with the registry launcher."""
from __future__ import annotations

import importlib.util
import io
from pathlib import Path

import fastavro
import pyarrow as pa

import fastsource as fs
from fastsource.kafka.reader.split_reader import BatchLimits

SCHEMA = {"type": "record", "name": "Event", "fields": [
    {"name": "id", "type": "long"}, {"name": "name", "type": "string"},
    {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "note", "type": ["null", "string"]}]}


def avro(schema: object, value: object) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(schema), value)
    return out.getvalue()


def test_avro_keys_and_values_read_all_over_both_transports(bootstrap, make_topic, producer, any_transport):
    topic = make_topic(partitions=2)
    events = [{"id": i, "name": f"n{i}", "ts": 1_700_000_000_000 + i, "note": None if i % 2 else "x"}
              for i in range(300)]
    for i, event in enumerate(events):
        producer.produce(topic, key=avro("long", i), value=avro(SCHEMA, event) if i != 7 else None,
                         partition=i % 2)
    producer.flush(30)
    source = fs.KafkaSource(bootstrap, topics=[topic], value_format=fs.formats.Avro(schema=SCHEMA),
                            key_format=fs.formats.Avro(schema="long"))
    table = source.read_all(parallelism=2)
    assert table.schema.field("key").type == pa.int64()
    assert table.schema.field("value").type.field("ts").type == pa.timestamp("ms", "UTC")
    got = {row["key"]: row["value"] for row in table.select(["key", "value"]).to_pylist()}
    assert len(got) == 300 and got[7] is None
    for i, event in enumerate(events):
        if i != 7:
            value = dict(got[i])
            value["ts"] = int(value["ts"].timestamp() * 1000)
            assert value == event


def test_a_restored_stream_goes_on_decoding_after_its_checkpoint(bootstrap, make_topic, producer, tmp_path):
    topic = make_topic()
    for i in range(200):
        producer.produce(topic, value=avro(SCHEMA, {"id": i, "name": "a", "ts": i, "note": None}))
    producer.flush(30)
    source = fs.KafkaSource(bootstrap, topics=[topic], value_format=fs.formats.Avro(schema=SCHEMA),
                            batch_limits=BatchLimits(max_rows=50))
    seen = []
    with source.open(checkpoint_dir=tmp_path) as stream:
        batch = next(iter(stream))
        seen.extend(batch.column("value").to_pylist())
        stream.checkpoint()
    with source.open(checkpoint_dir=tmp_path) as stream:
        for batch in stream:
            seen.extend(batch.column("value").to_pylist())
    assert [v["id"] for v in seen] == list(range(200))


def test_protobuf_values_read_all(bootstrap, make_topic, producer):
    spec = importlib.util.spec_from_file_location(
        "protobuf_fixtures", Path(__file__).parent.parent / "faults" / "protobuf_fixtures.py")
    fixtures = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fixtures)
    pb = fixtures.messages()
    topic = make_topic()
    messages = [pb.All(i64=i, s=f"s{i}", nums=list(range(i % 4)), inner=pb.Inner(x=i)) for i in range(100)]
    for message in messages:
        producer.produce(topic, value=message.SerializeToString())
    producer.flush(30)
    table = fs.KafkaSource(bootstrap, topics=[topic], value_format=fs.formats.Protobuf(pb.All)).read_all(1)
    values = table.column("value").to_pylist()
    assert [(v["i64"], v["s"], v["nums"], v["inner"]["x"]) for v in values] == \
        [(m.i64, m.s, list(m.nums), m.inner.x) for m in messages]
