"""Micro-benchmark of the compiled schema decoders (not a test): N records of a 6-field record (long,
string, double, boolean, timestamp-millis, nullable string) in one pa.BinaryArray, decoded batch by
batch by fastsource's Avro and Protobuf formats, against the per-record Python path (fastavro's
schemaless_reader / protobuf's ParseFromString + MessageToDict-like dicts, then pa.Table.from_pylist);
then fastsource alone on the wide record of `fastsource bench --registry` (30 fields with a list, a
map and a nested record; fastsource/benchmark/schemas.py), Avro and Protobuf.

Rates are records per second of CPU time of this process (time.process_time) as well as of wall
time: on a shared, loaded machine the CPU-time rate is the stable one.

    .venv/bin/python bench/decode_micro.py [--records N] [--rounds R] [--batch B] [--python-records P]
"""
from __future__ import annotations

import argparse
import io
import statistics
import time
from typing import Any, Callable

import fastavro
import pyarrow as pa

from fastsource.benchmark import bench_pb2, schemas
from fastsource.formats.avro import Avro
from fastsource.formats.protobuf import Protobuf

SCHEMA = {"type": "record", "name": "Event", "fields": [
    {"name": "id", "type": "long"}, {"name": "name", "type": "string"}, {"name": "score", "type": "double"},
    {"name": "ok", "type": "boolean"}, {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "note", "type": ["null", "string"]}]}


def event(i: int) -> dict:
    return {"id": i * 7919, "name": f"user-{i % 1000}", "score": i / 3.0, "ok": i % 2 == 0,
            "ts": 1_700_000_000_000 + i, "note": None if i % 3 else f"note {i}"}


def records(n: int) -> pa.BinaryArray:
    """N Avro datums of SCHEMA."""
    parsed = fastavro.parse_schema(SCHEMA)
    out = []
    buf = io.BytesIO()
    for i in range(n):
        buf.seek(0)
        buf.truncate()
        fastavro.schemaless_writer(buf, parsed, event(i))
        out.append(buf.getvalue())
    return pa.array(out, pa.binary())


def event_message() -> Any:
    """The same record as a Protobuf message class, built from a descriptor (no protoc needed)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, timestamp_pb2

    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(timestamp_pb2.DESCRIPTOR.serialized_pb)
    f = descriptor_pb2.FileDescriptorProto(name="bench_event.proto", package="bench", syntax="proto3",
                                           dependency=["google/protobuf/timestamp.proto"])
    m = f.message_type.add(name="Event")
    T = descriptor_pb2.FieldDescriptorProto
    for number, (name, kind) in enumerate([("id", T.TYPE_INT64), ("name", T.TYPE_STRING), ("score", T.TYPE_DOUBLE),
                                           ("ok", T.TYPE_BOOL)], start=1):
        m.field.add(name=name, number=number, type=kind, label=T.LABEL_OPTIONAL)
    m.field.add(name="ts", number=5, type=T.TYPE_MESSAGE, type_name=".google.protobuf.Timestamp",
                label=T.LABEL_OPTIONAL)
    m.oneof_decl.add(name="_note")
    m.field.add(name="note", number=6, type=T.TYPE_STRING, label=T.LABEL_OPTIONAL, oneof_index=0,
                proto3_optional=True)
    pool.Add(f)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("bench.Event"))


def messages(cls: Any, n: int) -> pa.BinaryArray:
    out = []
    for i in range(n):
        e = event(i)
        msg = cls(id=e["id"], name=e["name"], score=e["score"], ok=e["ok"])
        msg.ts.FromMilliseconds(e["ts"])
        if e["note"] is not None:
            msg.note = e["note"]
        out.append(msg.SerializeToString())
    return pa.array(out, pa.binary())


def measure(label: str, count: int, rounds: int, work: Callable[[], None]) -> None:
    cpu, wall = [], []
    for _ in range(rounds):
        c, w = time.process_time(), time.perf_counter()
        work()
        cpu.append(count / (time.process_time() - c))
        wall.append(count / (time.perf_counter() - w))
    print(f"{label}: median {statistics.median(cpu) / 1e6:.3f} M records per CPU-second "
          f"(rounds {', '.join(f'{r / 1e6:.2f}' for r in cpu)}); wall {statistics.median(wall) / 1e6:.3f} M/s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=10_000, help="records per decode call")
    parser.add_argument("--python-records", type=int, default=50_000)
    args = parser.parse_args()
    raw = records(args.records)
    size = args.batch

    def batches(fmt: Any, data: pa.Array) -> Callable[[], None]:
        return lambda: [fmt.decode(data.slice(at, size)) for at in range(0, len(data), size)]

    print(f"{len(raw)} Avro records of {raw.nbytes / len(raw):.1f} B, batches of {size}")
    measure("fastsource Avro", len(raw), args.rounds, batches(Avro(schema=SCHEMA), raw))
    parsed = fastavro.parse_schema(SCHEMA)
    sample = raw.slice(0, args.python_records).to_pylist()
    measure("fastavro schemaless_reader + pa.Table.from_pylist", len(sample), max(1, args.rounds // 2),
            lambda: pa.Table.from_pylist([fastavro.schemaless_reader(io.BytesIO(v), parsed) for v in sample]))

    cls = event_message()
    data = messages(cls, args.records)
    print(f"{len(data)} Protobuf records of {data.nbytes / len(data):.1f} B, batches of {size}")
    measure("fastsource Protobuf", len(data), args.rounds, batches(Protobuf(cls), data))
    psample = data.slice(0, args.python_records).to_pylist()

    def python_protobuf() -> None:
        rows = []
        for value in psample:
            msg = cls.FromString(value)
            rows.append({"id": msg.id, "name": msg.name, "score": msg.score, "ok": msg.ok,
                         "ts": msg.ts.ToNanoseconds(), "note": msg.note if msg.HasField("note") else None})
        pa.Table.from_pylist(rows)

    measure("protobuf FromString + dicts + pa.Table.from_pylist", len(psample), max(1, args.rounds // 2),
            python_protobuf)

    wide = wide_records(args.records)
    print(f"{len(wide)} wide Avro records of {wide.nbytes / len(wide):.1f} B, batches of {size}")
    measure("fastsource Avro, wide", len(wide), args.rounds, batches(Avro(schema=schemas.WIDE_AVRO), wide))
    wide = wide_messages(args.records)
    print(f"{len(wide)} wide Protobuf records of {wide.nbytes / len(wide):.1f} B, batches of {size}")
    measure("fastsource Protobuf, wide", len(wide), args.rounds, batches(Protobuf(bench_pb2.Wide), wide))


def wide_records(n: int, pool: int = 4096) -> pa.BinaryArray:
    """N Avro datums of the wide record, a pool of distinct ones round-robin (as the registry bench)."""
    parsed = fastavro.parse_schema(schemas.WIDE_AVRO)
    distinct = []
    for i in range(pool):
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, parsed, schemas.wide_record(i))
        distinct.append(buf.getvalue())
    return pa.array([distinct[i % pool] for i in range(n)], pa.binary())


def wide_messages(n: int, pool: int = 4096) -> pa.BinaryArray:
    distinct = [schemas.wide_message(bench_pb2.Wide, i).SerializeToString() for i in range(pool)]
    return pa.array([distinct[i % pool] for i in range(n)], pa.binary())


if __name__ == "__main__":
    main()
