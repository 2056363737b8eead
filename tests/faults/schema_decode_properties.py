"""Property checks and a bounded fuzz run of the compiled schema decoders (Avro, Protobuf), run as a
script in a subprocess by test_schema_decode_faults.py so that a crash fails that test instead of
killing the test run. Usage: python schema_decode_properties.py FORMAT EXAMPLES FUZZ_RECORDS, FORMAT one
of `avro`, `avro-framed`, `protobuf`.

Every batch of valid, mutated or random records either decodes to a valid array of the same length,
or raises RecordDecodeError at a row of the batch; a record the decoder accepts reads as the
reference library (fastavro, protobuf) reads it; through the emitter, errors="dead_letter" accounts
for every record exactly once.
"""
from __future__ import annotations

import io
import json
import random
import struct
import sys
from typing import Callable, Optional

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastsource.formats import Binary, Format, RecordDecodeError
from fastsource.kafka.reader.emitter import KafkaRecordEmitter
from fastsource.base.reader.split_reader import RecordsWithSplitIds
from fastsource.kafka.reader.split_reader import KafkaPartitionSplitReader

AVRO_SCHEMA = {"type": "record", "name": "Fz", "fields": [
    {"name": "l", "type": "long"}, {"name": "s", "type": "string"}, {"name": "b", "type": "boolean"},
    {"name": "d", "type": "double"}, {"name": "i", "type": "int"},
    {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B", "C"]}},
    {"name": "fx", "type": {"type": "fixed", "name": "F", "size": 3}},
    {"name": "u", "type": ["null", "long", "string", {"type": "array", "items": "int"}]},
    {"name": "m", "type": {"type": "map", "values": ["null", "bytes"]}},
    {"name": "dec", "type": {"type": "bytes", "logicalType": "decimal", "precision": 20, "scale": 4}},
    {"name": "sub", "type": ["null", {"type": "record", "name": "S", "fields": [
        {"name": "xs", "type": {"type": "array", "items": {"type": "array", "items": "float"}}},
        {"name": "n", "type": "null"}]}]},
]}

avro_records = st.fixed_dictionaries({
    "l": st.integers(-2 ** 63, 2 ** 63 - 1), "s": st.text(max_size=12), "b": st.booleans(),
    "d": st.floats(allow_nan=False), "i": st.integers(-2 ** 31, 2 ** 31 - 1),
    "e": st.sampled_from(["A", "B", "C"]), "fx": st.binary(min_size=3, max_size=3),
    "u": st.none() | st.integers(-2 ** 63, 2 ** 63 - 1) | st.text(max_size=5)
    | st.lists(st.integers(-2 ** 31, 2 ** 31 - 1), max_size=3),
    "m": st.dictionaries(st.text(max_size=3), st.none() | st.binary(max_size=4), max_size=3),
    "dec": st.decimals(min_value=-10 ** 15, max_value=10 ** 15, places=4, allow_nan=False, allow_infinity=False),
    "sub": st.none() | st.fixed_dictionaries({"xs": st.lists(st.lists(st.floats(width=32, allow_nan=False),
                                                                       max_size=2), max_size=2),
                                              "n": st.none()}),
})


class Case:
    """One format under test: how to make it, encode a record, and read a payload as the reference."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.header = b""
        if name.startswith("avro"):
            import fastavro

            from fastsource.formats.avro import Avro

            self.parsed = fastavro.parse_schema(json.loads(json.dumps(AVRO_SCHEMA)))
            self.records = avro_records
            if name == "avro-framed":
                from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

                client = SchemaRegistryClient.new_client({"url": "mock://fuzz"})
                schema_id = client.register_schema("fz-value", Schema(json.dumps(AVRO_SCHEMA), "AVRO"))
                self.header = b"\x00" + struct.pack(">I", schema_id)
                self.make = lambda errors: Avro(client, errors=errors).bind(["fz"], False, 1000)
            else:
                self.make = lambda errors: Avro(schema=AVRO_SCHEMA, errors=errors)
        else:
            from protobuf_fixtures import fuzz_case

            self.make, self.records, self.encode_record, self.reference = fuzz_case()

    def fix(self, row: dict) -> dict:
        """A decoded row in the reference's form where the two differ beyond `normalize`."""
        if self.name.startswith("avro"):
            row["m"] = dict(row["m"])  # an empty map
            return row
        from protobuf_fixtures import fix_row

        row = fix_row(row)
        for name in ("m", "mi"):
            row[name] = dict(row[name])
        return row

    def encode(self, record: dict) -> bytes:
        if self.name.startswith("avro"):
            import fastavro

            out = io.BytesIO()
            fastavro.schemaless_writer(out, self.parsed, record)
            return self.header + out.getvalue()
        return self.encode_record(record)

    def read(self, payload: bytes) -> Optional[object]:
        """The reference reading of a payload, or None when the reference refuses it."""
        if self.name.startswith("avro"):
            import fastavro

            if not payload.startswith(self.header):
                return None
            stream = io.BytesIO(payload[len(self.header):])
            try:
                value = fastavro.schemaless_reader(stream, self.parsed)
            except Exception:  # fastavro fails in many ways on garbage; any of them is a refusal
                return None
            return value if stream.tell() == len(payload) - len(self.header) else None
        return self.reference(payload)


def normalize(value: object) -> object:
    """Arrow maps (lists of key-value tuples) as dicts."""
    if isinstance(value, dict):
        return {k: normalize(v) for k, v in value.items()}
    if isinstance(value, list):
        if value and all(isinstance(v, tuple) and len(v) == 2 for v in value):
            return {k: normalize(v) for k, v in value}
        return [normalize(v) for v in value]
    return value


def check_batch(case: Case, payloads: list[Optional[bytes]]) -> None:
    fmt = case.make("raise")
    raw = pa.array(payloads, pa.binary())
    try:
        out = fmt.decode(raw)
    except RecordDecodeError as exc:
        assert 0 <= exc.row < len(payloads) and exc.reason, (exc.row, exc.reason)
        assert payloads[exc.row] is not None
        accepted = payloads[:exc.row]
        if accepted:
            check_batch(case, accepted)
        return
    assert len(out) == len(payloads)
    out.validate(full=True)
    for payload, row in zip(payloads, out.to_pylist()):
        if payload is None:
            assert row is None
            continue
        expected = case.read(payload)
        assert expected is not None, f"accepted a record the reference refuses: {payload!r}"
        row = case.fix(row)
        assert normalize(row) == normalize(expected), (payload, row, expected)


def check_emitter(case: Case, payloads: list[Optional[bytes]]) -> None:
    n = len(payloads)
    batch = pa.RecordBatch.from_arrays([
        pa.array(["fz"] * n), pa.array([1] * n, pa.int32()), pa.array(range(50, 50 + n), pa.int64()),
        pa.array([0] * n, pa.timestamp("ms", "UTC")), pa.array([0] * n, pa.int8()),
        pa.array([None] * n, pa.binary()), pa.array(payloads, pa.binary())],
        schema=KafkaPartitionSplitReader.raw_schema(False))
    emitter = KafkaRecordEmitter(batch.schema, Binary(), case.make("dead_letter"))
    out = emitter.emit(RecordsWithSplitIds(batch), {})
    out.validate(full=True)
    dead = pa.Table.from_batches(emitter.dead_letters, schema=emitter.dead_letter_schema)
    kept, diverted = out.column("offset").to_pylist(), dead.column("offset").to_pylist()
    assert sorted(kept + diverted) == list(range(50, 50 + n))
    assert all(dead.column("error").to_pylist())


def mutate(data: st.DataObject, payload: bytes, keep: int) -> bytes:
    """The payload cut short, or with bytes inserted or replaced after its first `keep` bytes."""
    value = bytearray(payload)
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(min(keep, len(value)), len(value)))
        action = data.draw(st.sampled_from(["cut", "insert", "replace"]))
        if action == "cut":
            del value[at:]
        else:
            piece = data.draw(st.binary(min_size=1, max_size=4)
                              | st.sampled_from([b"\xff" * 11, b"\x01", b"\x7f", b"\x80", b"\xc0\x80"]))
            value[at:at + (len(piece) if action == "replace" else 0)] = piece
    return bytes(value)


def main(name: str, examples: int, fuzz_records: int) -> None:
    case = Case(name)
    keep = len(case.header)

    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.data())
    def properties(data: st.DataObject) -> None:
        payloads: list[Optional[bytes]] = []
        for _ in range(data.draw(st.integers(1, 12))):
            kind = data.draw(st.sampled_from(["valid", "mutated", "random", "null"]))
            if kind == "null":
                payloads.append(None)
                continue
            payload = case.encode(data.draw(case.records))
            if kind == "mutated":
                payload = mutate(data, payload, keep)
            elif kind == "random":
                payload = case.header + data.draw(st.binary(max_size=40))
            payloads.append(payload)
        check_batch(case, payloads)
        check_emitter(case, payloads)

    properties()
    # Bounded fuzz: random payloads behind a valid header, many per batch.
    rng = random.Random(17)
    fmt = case.make("raise")
    done = 0
    while done < fuzz_records:
        payloads = [case.header + rng.randbytes(rng.choice([1, 2, 5, 17, 60, 300])) for _ in range(500)]
        raw = pa.array(payloads, pa.binary())
        start = 0
        while start < len(payloads):  # decode the batch as the emitter does: past each bad row
            try:
                fmt.decode(raw.slice(start)).validate(full=True)
                break
            except RecordDecodeError as exc:
                assert 0 <= exc.row < len(payloads) - start
                start += exc.row + 1
        done += len(payloads)
    print(f"{name}: ok ({examples} examples, {done} fuzzed records)")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
