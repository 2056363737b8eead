"""Avro from a real Schema Registry on a local Ray: `fastsource.ray.read_kafka` and a stream with
`RayRuntime` decode in the read tasks / reader actors, equal to confluent-kafka's AvroDeserializer."""
from __future__ import annotations

import json

import pyarrow as pa
import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'fastsource[ray]')")
pytest.importorskip("confluent_kafka.schema_registry.avro", reason="needs fastsource[avro]")

import fastsource as fs  # noqa: E402
import fastsource.ray as fray  # noqa: E402
from fastsource.benchmark import schemas  # noqa: E402
from fastsource.ray import RayRuntime  # noqa: E402


def _fill(producer, topic: str, schema_registry: str, count: int) -> dict[bytes, dict]:
    """`count` wide records over the topic's partitions, keyed by their number; returns what
    AvroDeserializer makes of each, by key."""
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    client = SchemaRegistryClient({"url": schema_registry})
    serialize = AvroSerializer(client, json.dumps(schemas.WIDE_AVRO))
    deserialize = AvroDeserializer(client)
    context = SerializationContext(topic, MessageField.VALUE)
    expected = {}
    for i in range(count):
        raw = serialize(schemas.wide_record(i), context)
        key = b"%d" % i
        producer.produce(topic, key=key, value=raw, partition=i % 3)
        expected[key] = deserialize(raw, context)
    producer.flush(30)
    return expected


def _by_key(table: pa.Table) -> dict[bytes, dict]:
    rows = table.select(["key", "value"]).to_pylist(maps_as_pydicts="strict")
    return {row["key"]: row["value"] for row in rows}


def test_read_kafka_decodes_avro_in_the_read_tasks(ray_local, bootstrap, schema_registry, make_topic,
                                                   producer):
    topic = make_topic(partitions=3)
    expected = _fill(producer, topic, schema_registry, 900)
    ds = fray.read_kafka(topic, bootstrap_servers=bootstrap, include_headers=False,
                         value_format=fs.formats.Avro(schema_registry=schema_registry),
                         max_records_per_split=200)
    table = pa.concat_tables(ray.get(ds.to_arrow_refs()))
    assert table.num_rows == 900
    assert _by_key(table) == expected


def test_a_ray_runtime_stream_decodes_avro_in_its_reader_actors(ray_local, bootstrap, schema_registry,
                                                                make_topic, producer, tmp_path):
    """Readers as Ray actors (the format travels to them pickled): checkpointed, restored, every
    record once and equal to AvroDeserializer's result."""
    topic = make_topic(partitions=3)
    expected = _fill(producer, topic, schema_registry, 600)

    def source():
        return fs.KafkaSource(bootstrap, topics=[topic], batch_limits=fs.BatchLimits(max_rows=100),
                              value_format=fs.formats.Avro(schema_registry=schema_registry))

    batches = []
    with source().open(parallelism=2, checkpoint_dir=tmp_path, runtime=RayRuntime(num_cpus=0.5)) as stream:
        batches.append(next(stream))
        stream.checkpoint()
    with source().open(parallelism=2, checkpoint_dir=tmp_path, runtime=RayRuntime(num_cpus=0.5)) as stream:
        assert stream.restored_checkpoint_id is not None
        batches.extend(stream)
    table = pa.Table.from_batches(batches)
    assert table.num_rows == 600  # each record once
    assert _by_key(table) == expected
