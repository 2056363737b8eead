"""One benchmark reader per process, printing one JSON line: messages, bytes, seconds (connect to end),
seconds from the first record to the end, peak RSS.

Usage: python readers.py IMPL BOOTSTRAP TOPIC PARTITIONS [READERS [REGISTRY KIND]] (run by suite.py)
IMPL: fastsource | confluent | fastsource-json | python-json | fastsource-avro | confluent-avro |
fastsource-protobuf | confluent-protobuf; READERS: fastsource's parallelism (1); REGISTRY: the Schema
Registry's URL and KIND: small | wide (the record of registry_bench.py) for the avro and protobuf ones.
The Python peers (peers/*.py) import this module for the same Arrow building and report line.
"""
from __future__ import annotations

import json
import resource
import sys
import time

STARTED = time.perf_counter()

import pyarrow as pa  # noqa: E402


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM). Not ru_maxrss: Linux carries that across execve, so a reader
    spawned by a large parent (the producer of the bench topics) would report the parent's peak."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def json_schema() -> pa.Schema:
    return pa.schema([("id", pa.int64()), ("user", pa.int64()), ("kind", pa.string()),
                      ("amount", pa.float64()), ("ts", pa.int64())])


def report(rows: int, nbytes: int, connect: float, first: float | None) -> None:
    """Print the one JSON line the suite reads: counts, connect-to-end and first-record-to-end seconds."""
    done = time.perf_counter()
    print(json.dumps({"messages": rows, "bytes": nbytes, "seconds": done - connect,
                      "seconds_from_first": done - (first if first is not None else connect),
                      "process_seconds": done - STARTED, "peak_rss_mb": peak_rss_mb()}))


def run_fastsource(bootstrap: str, topic: str, readers: int, value_format=None) -> tuple[int, int, float | None]:
    import fastsource as fs

    kwargs = {"value_format": value_format} if value_format is not None else {}
    source = fs.KafkaSource(bootstrap, topics=[topic], **kwargs)
    rows = nbytes = 0
    first = None
    with source.open(parallelism=readers) as stream:
        for batch in stream:
            if first is None and batch.num_rows:
                first = time.perf_counter()
            rows += batch.num_rows
        nbytes = stream.metrics()["bytes"]
    return rows, nbytes, first


def confluent_batches(bootstrap: str, topic: str, partitions: int):
    """What Python users write today: consume() in a loop, messages into lists, lists into Arrow."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "fastsource-bench-py",
                         "enable.auto.commit": False, "enable.partition.eof": True,
                         "queued.min.messages": 200000, "fetch.wait.max.ms": 100,
                         "fetch.queue.backoff.ms": 10,
                         "max.partition.fetch.bytes": 524288, "reconnect.backoff.ms": 10})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    eof = set()
    try:
        while len(eof) < partitions:
            messages = consumer.consume(num_messages=65536, timeout=0.1)
            good = []
            for m in messages:
                error = m.error()
                if error is None:
                    good.append(m)
                elif error.code() == -191:
                    eof.add(m.partition())
                else:
                    raise RuntimeError(error)
            if good:
                yield good
    finally:
        consumer.close()


def arrow_batch(topics: list, partitions: list, offsets: list, timestamps: list, keys: list,
                values: list) -> pa.RecordBatch:
    """Columns gathered per message into the record batch fastsource's raw reads yield."""
    return pa.record_batch([
        pa.array(topics, pa.string()),
        pa.array(partitions, pa.int32()),
        pa.array(offsets, pa.int64()),
        pa.array(timestamps, pa.int64()).cast(pa.timestamp("ms", tz="UTC")),
        pa.array(keys, pa.binary()),
        pa.array(values, pa.binary()),
    ], names=["topic", "partition", "offset", "timestamp", "key", "value"])


def json_table(values: list[bytes]) -> pa.Table:
    """What Python users write for JSON values: json.loads per message, one Table per chunk."""
    return pa.Table.from_pylist([json.loads(v) for v in values], schema=json_schema())


def run_confluent(bootstrap: str, topic: str, partitions: int) -> tuple[int, int, float | None]:
    rows = nbytes = 0
    first = None
    for messages in confluent_batches(bootstrap, topic, partitions):
        first = first or time.perf_counter()
        keys = [m.key() for m in messages]
        values = [m.value() for m in messages]
        batch = arrow_batch([m.topic() for m in messages], [m.partition() for m in messages],
                            [m.offset() for m in messages], [m.timestamp()[1] for m in messages], keys, values)
        rows += batch.num_rows
        nbytes += sum(len(k or b"") + len(v or b"") for k, v in zip(keys, values))
    return rows, nbytes, first


def run_python_json(bootstrap: str, topic: str, partitions: int) -> tuple[int, int, float | None]:
    rows = nbytes = 0
    first = None
    for messages in confluent_batches(bootstrap, topic, partitions):
        first = first or time.perf_counter()
        values = [m.value() for m in messages]
        rows += json_table(values).num_rows
        nbytes += sum(len(v) for v in values)
    return rows, nbytes, first


def _message_class(kind: str):
    """bench_pb2's message class, loaded from its file: the confluent-kafka baseline must not pay for
    importing fastsource."""
    import importlib.util
    from pathlib import Path

    module = sys.modules.get("fastsource_bench_pb2")
    if module is None:
        spec = importlib.util.spec_from_file_location("fastsource_bench_pb2",
                                                      Path(__file__).with_name("bench_pb2.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    return module.Small if kind == "small" else module.Wide


def schema_format(impl: str, registry: str, kind: str):
    """fastsource's format of an avro or protobuf reader."""
    import fastsource as fs

    if impl == "fastsource-avro":
        return fs.formats.Avro(schema_registry=registry)
    return fs.formats.Protobuf(message=_message_class(kind), schema_registry=registry)


def run_confluent_schema(bootstrap: str, topic: str, partitions: int, impl: str, registry: str,
                         kind: str) -> tuple[int, int, float | None]:
    """What Python users write for Schema Registry topics: confluent-kafka's deserializer per message
    (Protobuf messages to dicts with json_format.MessageToDict), one Table.from_pylist per chunk."""
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.serialization import MessageField, SerializationContext

    if impl == "confluent-avro":
        from confluent_kafka.schema_registry.avro import AvroDeserializer

        deserialize = AvroDeserializer(SchemaRegistryClient({"url": registry}))
        to_row = None
    else:
        from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer
        from google.protobuf.json_format import MessageToDict

        deserialize = ProtobufDeserializer(_message_class(kind), {"use.deprecated.format": False})
        to_row = lambda m: MessageToDict(m, preserving_proto_field_name=True)  # noqa: E731
    context = SerializationContext(topic, MessageField.VALUE)
    rows = nbytes = 0
    first = None
    for messages in confluent_batches(bootstrap, topic, partitions):
        first = first or time.perf_counter()
        values = [m.value() for m in messages]
        decoded = [deserialize(v, context) for v in values]
        if to_row is not None:
            decoded = [to_row(m) for m in decoded]
        rows += pa.Table.from_pylist(decoded).num_rows
        nbytes += sum(len(v) for v in values)
    return rows, nbytes, first


def main() -> None:
    impl, bootstrap, topic, partitions = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    readers = int(sys.argv[5]) if len(sys.argv) > 5 else 1
    connect = time.perf_counter()
    if impl == "fastsource":
        rows, nbytes, first = run_fastsource(bootstrap, topic, readers)
    elif impl == "fastsource-json":
        import fastsource as fs
        rows, nbytes, first = run_fastsource(bootstrap, topic, readers, fs.formats.Json(json_schema()))
    elif impl == "confluent":
        rows, nbytes, first = run_confluent(bootstrap, topic, partitions)
    elif impl == "python-json":
        rows, nbytes, first = run_python_json(bootstrap, topic, partitions)
    elif impl in ("fastsource-avro", "fastsource-protobuf"):
        rows, nbytes, first = run_fastsource(bootstrap, topic, readers,
                                             schema_format(impl, sys.argv[6], sys.argv[7]))
    elif impl in ("confluent-avro", "confluent-protobuf"):
        rows, nbytes, first = run_confluent_schema(bootstrap, topic, partitions, impl, sys.argv[6],
                                                   sys.argv[7])
    else:
        raise SystemExit(f"unknown reader {impl}")
    report(rows, nbytes, connect, first)


if __name__ == "__main__":
    main()
