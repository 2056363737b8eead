"""Micro-benchmark of the compiled Avro decoder (not a test): N records of a 6-field record (long,
string, double, boolean, timestamp-millis, nullable string) from one pa.BinaryArray, decoded by
fastsource's Avro format vs fastavro's schemaless_reader + pa.Table.from_pylist.

    .venv/bin/python bench/decode_micro.py [--records N] [--rounds R] [--batch B]
"""
from __future__ import annotations

import argparse
import io
import statistics
import time

import fastavro
import pyarrow as pa

from fastsource.formats.avro import Avro

SCHEMA = {"type": "record", "name": "Event", "fields": [
    {"name": "id", "type": "long"}, {"name": "name", "type": "string"}, {"name": "score", "type": "double"},
    {"name": "ok", "type": "boolean"}, {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "note", "type": ["null", "string"]}]}


def records(n: int) -> pa.BinaryArray:
    parsed = fastavro.parse_schema(SCHEMA)
    out = []
    buf = io.BytesIO()
    for i in range(n):
        buf.seek(0)
        buf.truncate()
        fastavro.schemaless_writer(buf, parsed, {"id": i * 7919, "name": f"user-{i % 1000}", "score": i / 3.0,
                                                 "ok": i % 2 == 0, "ts": 1_700_000_000_000 + i,
                                                 "note": None if i % 3 else f"note {i}"})
        out.append(buf.getvalue())
    return pa.array(out, pa.binary())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=0, help="records per decode call (0: all at once)")
    parser.add_argument("--fastavro-records", type=int, default=100_000)
    args = parser.parse_args()
    raw = records(args.records)
    size = args.batch or len(raw)
    fmt = Avro(schema=SCHEMA)
    rates = []
    for _ in range(args.rounds):
        start = time.perf_counter()
        for at in range(0, len(raw), size):
            fmt.decode(raw.slice(at, size))
        rates.append(len(raw) / (time.perf_counter() - start))
    print(f"fastsource Avro: {len(raw)} records of {raw.nbytes / len(raw):.1f} B, batch {size}: "
          f"median {statistics.median(rates) / 1e6:.2f} M records/s (rounds: "
          f"{', '.join(f'{r / 1e6:.2f}' for r in rates)})")
    parsed = fastavro.parse_schema(SCHEMA)
    sample = raw.slice(0, args.fastavro_records).to_pylist()
    rates = []
    for _ in range(max(1, args.rounds // 2)):
        start = time.perf_counter()
        rows = [fastavro.schemaless_reader(io.BytesIO(value), parsed) for value in sample]
        pa.Table.from_pylist(rows)
        rates.append(len(sample) / (time.perf_counter() - start))
    print(f"fastavro schemaless_reader + from_pylist: {len(sample)} records: "
          f"median {statistics.median(rates) / 1e6:.3f} M records/s")


if __name__ == "__main__":
    main()
