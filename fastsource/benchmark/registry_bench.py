"""Avro and Protobuf topics in Confluent's wire format, read into Arrow (`fastsource bench --registry`).

    fastsource bench --registry                                   # smoke run: 50 k records, 1 round
    fastsource bench --registry --full                            # 2 M records per topic, 5 rounds
    fastsource bench --registry --records 1000000 --rounds 3 --schema-registry URL --bootstrap HOST:PORT
    fastsource bench --registry --cases avro-6,protobuf-6 --no-flink   # some topics, no JVM

Four topics, produced once with confluent-kafka's AvroSerializer / ProtobufSerializer against a real
Schema Registry (the project's local one unless --schema-registry is given): a 6-field record (long,
string, double, boolean, timestamp-millis, nullable string) and a wide nested one (30 fields with a
list, a map and a nested record), each as Avro and as Protobuf. Each topic is read, one reader each,
in alternating order every round (the suite's runner), by:

- fastsource with the format (`fs.formats.Avro` / `fs.formats.Protobuf`, one reader);
- fastsource reading the same topic as Binary (the raw read the decoding adds to);
- confluent-kafka's consumer + AvroDeserializer / ProtobufDeserializer per record + `pa.Table.from_pylist`
  (Protobuf messages to dicts with `json_format.MessageToDict`, as Python users write it);
- Flink's KafkaSource with AvroDeserializationSchema (the 5-byte prefix stripped), parallelism 1, for
  the Avro topics, when Java and Maven are here.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any, Callable

from fastsource.benchmark import harness

FS_FORMAT = {"avro": "fastsource Avro(schema_registry), 1 reader",
             "protobuf": "fastsource Protobuf(message, schema_registry), 1 reader"}
FS_BINARY = "fastsource Binary, 1 reader"
CONFLUENT = {"avro": "confluent-kafka AvroDeserializer + Table.from_pylist",
             "protobuf": "confluent-kafka ProtobufDeserializer + MessageToDict + Table.from_pylist"}
FLINK = "Flink KafkaSource + AvroDeserializationSchema, parallelism 1"
# (case, serialization, record kind)
TOPICS = [("avro-6", "avro", "small"), ("avro-wide", "avro", "wide"),
          ("protobuf-6", "protobuf", "small"), ("protobuf-wide", "protobuf", "wide")]
POOL = 4096  # distinct records serialized per topic, produced round-robin


def _serializer(registry_url: str, serialization: str, kind: str) -> tuple[Callable, Callable[[int], Any]]:
    """(confluent-kafka's serializer for the kind, the kind's record number i)."""
    from confluent_kafka.schema_registry import SchemaRegistryClient

    from fastsource.benchmark import schemas

    client = SchemaRegistryClient({"url": registry_url})
    if serialization == "avro":
        from confluent_kafka.schema_registry.avro import AvroSerializer

        schema = schemas.SMALL_AVRO if kind == "small" else schemas.WIDE_AVRO
        make = schemas.small_record if kind == "small" else schemas.wide_record
        return AvroSerializer(client, json.dumps(schema)), make
    from confluent_kafka.schema_registry.protobuf import ProtobufSerializer

    from fastsource.benchmark import bench_pb2

    cls = bench_pb2.Small if kind == "small" else bench_pb2.Wide
    build = schemas.small_message if kind == "small" else schemas.wide_message
    return (ProtobufSerializer(cls, client, {"use.deprecated.format": False}),
            lambda i: build(cls, i))


def produce(bootstrap: str, registry_url: str, topic: str, messages: int, serialization: str,
            kind: str) -> None:
    """`messages` records of `kind` serialized as confluent-kafka does (a pool of POOL records,
    round-robin) into a new topic of harness.PARTITIONS partitions; nothing if the topic exists."""
    from confluent_kafka.serialization import MessageField, SerializationContext

    serialize, make = _serializer(registry_url, serialization, kind)
    context = SerializationContext(topic, MessageField.VALUE)
    pool = [serialize(make(i), context) for i in range(POOL)]
    harness.produce(bootstrap, topic, messages, "pool", pool=pool)


def _cases(bootstrap: str, registry_url: str, topics: dict[str, str], work: Path,
           unavailable: dict[str, str], flink_too: bool = True) -> dict[str, dict[str, list[str]]]:
    from fastsource.benchmark import schemas
    from fastsource.benchmark.peers import flink_peer as flink

    parts = str(harness.PARTITIONS)
    py = [sys.executable, str(harness.HERE / "readers.py")]
    classpath, reason = "", None
    if flink_too:
        try:
            classpath = flink.prepare()
        except flink.Unavailable as exc:
            reason = f"unavailable: {exc}"
    cases: dict[str, dict[str, list[str]]] = {}
    for case, serialization, kind in TOPICS:
        if case not in topics:
            continue
        topic = topics[case]
        extra = [registry_url, kind]
        cases[case] = {
            FS_FORMAT[serialization]: py + [f"fastsource-{serialization}", bootstrap, topic, parts, "1", *extra],
            FS_BINARY: py + ["fastsource", bootstrap, topic, parts, "1"],
            CONFLUENT[serialization]: py + [f"confluent-{serialization}", bootstrap, topic, parts, "1", *extra],
        }
        if importlib.util.find_spec(f"fastsource.formats.{serialization}") is None:
            unavailable[FS_FORMAT[serialization]] = f"unavailable: fastsource.formats.{serialization} is missing"
        if serialization == "avro" and flink_too:
            schema_file = work / f"{kind}.avsc"
            schema_file.write_text(json.dumps(schemas.SMALL_AVRO if kind == "small" else schemas.WIDE_AVRO))
            cases[case][FLINK] = flink.command(classpath, bootstrap, topic, 1, "avro", schema_file)
            if reason:
                unavailable[FLINK] = reason
    return cases


def _ratios(runs: dict[str, list[dict]], failures: dict[str, str], serialization: str) -> list[str]:
    """The goals of issue 17: the format against confluent-kafka's deserializers, the Binary read
    and Flink, as medians of the per-round time ratios."""
    def ran(name: str) -> bool:
        return bool(runs.get(name))  # the rounds completed count, even if a later one failed

    ours = FS_FORMAT[serialization]
    if not ran(ours):
        return []
    lines = []
    for other, goal in ((CONFLUENT[serialization], "goal >= 20x"), (FLINK, "goal >= 3x")):
        if ran(other):
            lines.append(f"- {ours} is {harness.paired_ratio(runs[ours], runs[other]):.2f}x as fast as {other} "
                         f"(whole process), {_from_first(runs[ours], runs[other]):.2f}x from the first record "
                         f"({goal})")
    if ran(FS_BINARY):
        lines.append(f"- {ours} reads at {harness.paired_ratio(runs[ours], runs[FS_BINARY]):.2f}x the records/s "
                     f"of the Binary read of the same topic (whole process), "
                     f"{_from_first(runs[ours], runs[FS_BINARY]):.2f}x from the first record "
                     f"({'goal >= 0.6x' if serialization == 'avro' else 'issue 17 sets this goal for Avro only'})")
    return lines + [""]


def _from_first(fast: list[dict], other: list[dict]) -> float:
    return harness.paired_ratio(fast, other, "seconds_from_first")


def run(bootstrap: str, registry_url: str, n: int, rounds: int, work: Path,
        markdown: Path | None = None, only: list[str] | None = None, flink_too: bool = True) -> None:
    """Produce the topics (unless present), run every reader `rounds` times, print the tables."""
    from fastsource.benchmark.peers_suite import _table

    chosen = [t for t in TOPICS if only is None or t[0] in only]
    topics = {case: f"bench-{case}-{n}" for case, _, _ in chosen}
    print(f"broker {bootstrap}, registry {registry_url}; producing ...", flush=True)
    for case, serialization, kind in chosen:
        produce(bootstrap, registry_url, topics[case], n, serialization, kind)
    failures: dict[str, str] = {}
    cases = _cases(bootstrap, registry_url, topics, work, failures, flink_too)
    for name, reason in failures.items():
        print(f"  {name}: {reason}", flush=True)
    results = harness.run_rounds(cases, rounds, n, failures, timeout=120 + n / 250)
    lines = [f"## Schema Registry formats: {n:,} records per topic, {harness.PARTITIONS} partitions, "
             f"{rounds} round(s), median", ""]
    serializations = {case: serialization for case, serialization, _ in TOPICS}
    for case, runs in results.items():
        lines += _table(case, runs, n, failures)
        lines += _ratios(runs, failures, serializations[case])
    text = "\n".join(lines)
    print()
    print(text)
    if markdown is not None:
        markdown.write_text(text + "\n")


def main(args: argparse.Namespace) -> None:
    """`fastsource bench --registry`: a local Schema Registry unless --schema-registry names one."""
    from fastsource.registry import LocalRegistry

    n = args.messages or (50_000 if args.quick else 2_000_000)
    rounds = args.rounds or (1 if args.quick else 5)
    with harness.bench_broker(args.bootstrap, args.port, "fastsource-bench-registry-") as (bootstrap, work, _):
        registry = None
        url = args.schema_registry
        if url is None:
            registry = LocalRegistry(port=args.port + 2)
            url = registry.start()
        try:
            run(bootstrap, url, n, rounds, work, args.markdown,
                args.cases.split(",") if args.cases else None, not args.no_flink)
        finally:
            if registry is not None:
                registry.stop()
                registry.wipe()
