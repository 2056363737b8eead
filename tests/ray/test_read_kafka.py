"""fastsource.ray.read_kafka against ray.data.read_kafka on the same topics, on a local Ray."""
from __future__ import annotations

import os
import sys
from datetime import datetime, timezone

import pyarrow as pa
import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'fastsource[ray]')")

import fastsource.ray as fray  # noqa: E402
from fastsource.errors import ConfigError, UnknownTopicError  # noqa: E402

BASE_MS = 1_700_000_000_000


def fill(producer, topic: str, partitions: int, per_partition: int) -> None:
    """Records with varied keys (some null), values and headers; timestamps BASE_MS + i seconds."""
    for p in range(partitions):
        for i in range(per_partition):
            headers = [("h", b"x%d" % i), ("n", str(i).encode())] if i % 3 == 0 else None
            producer.produce(topic, value=b"value-%d-%d" % (p, i), partition=p,
                             key=(b"key-%d" % i if i % 4 else None), headers=headers,
                             timestamp=BASE_MS + i * 1000)
    producer.flush(30)


def rows(ds) -> list[dict]:
    return sorted(ds.take_all(), key=lambda r: (r["topic"], r["partition"], r["offset"]))


def comparable(row: dict) -> tuple:
    """A row without Ray's inferred header layout: headers as a dict, absent ones left out."""
    headers = row["headers"]
    headers = dict(headers) if isinstance(headers, list) else {k: v for k, v in (headers or {}).items()
                                                               if v is not None}
    return (row["topic"], row["partition"], row["offset"], row["key"], row["value"], row["timestamp"],
            row["timestamp_type"], tuple(sorted(headers.items())))


def test_same_rows_as_ray_read_kafka(ray_local, bootstrap, make_topic, producer):
    topic = make_topic(partitions=3)
    fill(producer, topic, 3, 700)
    ours = fray.read_kafka(topic, bootstrap_servers=bootstrap).materialize()
    theirs = ray.data.read_kafka(topic, bootstrap_servers=bootstrap).materialize()
    assert ours.schema().base_schema == fray.KAFKA_SCHEMA
    mine, ray_rows = rows(ours), rows(theirs)
    assert len(mine) == 2100
    assert [comparable(r) for r in mine] == [comparable(r) for r in ray_rows]
    first = next(r for r in mine if r["partition"] == 1 and r["offset"] == 3)
    assert first["headers"] == [("h", b"x3"), ("n", b"3")] and first["key"] == b"key-3"


def test_per_partition_and_integer_offsets_as_ray(ray_local, bootstrap, make_topic, producer):
    topic = make_topic(partitions=3)
    fill(producer, topic, 3, 100)
    start = {topic: {0: 10, 1: "earliest"}}       # partition 2: earliest
    end = {topic: {0: 25, 2: 1000}}               # partition 1: latest; 1000 is past the end
    ours = rows(fray.read_kafka(topic, bootstrap_servers=bootstrap, start_offset=start,
                                end_offset=end))
    theirs = rows(ray.data.read_kafka(topic, bootstrap_servers=bootstrap, start_offset=start,
                                      end_offset=end))
    assert [comparable(r) for r in ours] == [comparable(r) for r in theirs]
    assert [r["offset"] for r in ours if r["partition"] == 0] == list(range(10, 25))
    assert len(ours) == 15 + 100 + 100
    ints = rows(fray.read_kafka([topic], bootstrap_servers=[bootstrap], start_offset=90, end_offset=95))
    assert [(r["partition"], r["offset"]) for r in ints] == [(p, o) for p in range(3) for o in range(90, 95)]


def test_datetime_offsets_as_ray(ray_local, bootstrap, make_topic, producer):
    topic = make_topic(partitions=2)
    fill(producer, topic, 2, 100)
    start = datetime.fromtimestamp((BASE_MS + 20_000) / 1000, tz=timezone.utc)
    end = datetime.fromtimestamp((BASE_MS + 30_500) / 1000, tz=timezone.utc).replace(tzinfo=None)
    ours = rows(fray.read_kafka(topic, bootstrap_servers=bootstrap, start_offset=start, end_offset=end))
    theirs = rows(ray.data.read_kafka(topic, bootstrap_servers=bootstrap, start_offset=start,
                                      end_offset=end))
    assert [comparable(r) for r in ours] == [comparable(r) for r in theirs]
    assert [(r["partition"], r["offset"]) for r in ours] == [(p, o) for p in range(2) for o in range(20, 31)]
    future = datetime(2100, 1, 1)
    assert fray.read_kafka(topic, bootstrap_servers=bootstrap, start_offset=future).count() == 0


def test_one_partition_read_by_four_tasks(ray_local, bootstrap, make_topic, producer):
    topic = make_topic(partitions=1)
    fill(producer, topic, 1, 4000)
    source = fray.KafkaDatasource(topic, bootstrap, min_read_tasks=4)
    tasks = source.get_read_tasks(200)
    assert [t.metadata.input_files[0] for t in tasks] == [
        f"kafka://{topic}/0/{a}-{b}" for a, b in ((0, 1000), (1000, 2000), (2000, 3000), (3000, 4000))]
    ds = fray.read_kafka(topic, bootstrap_servers=bootstrap, override_num_blocks=4)
    assert [r["offset"] for r in rows(ds)] == list(range(4000))
    split = fray.read_kafka(topic, bootstrap_servers=bootstrap, max_records_per_split=1500)
    assert [r["offset"] for r in rows(split)] == list(range(4000))
    assert len(fray.KafkaDatasource(topic, bootstrap, max_records_per_split=1500).get_read_tasks(1)) == 3


class CrashOnce:
    """A read function that kills its worker process after its first block, the first time only."""

    def __init__(self, read, marker: str) -> None:
        self.read = read
        self.marker = marker

    def __call__(self):
        for i, block in enumerate(self.read()):
            yield block
            if i == 0 and not os.path.exists(self.marker):
                open(self.marker, "w").close()
                os._exit(1)


class CrashingDatasource(fray.KafkaDatasource):
    def __init__(self, *args, marker: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.marker = marker

    def get_read_tasks(self, parallelism, per_task_row_limit=None, data_context=None):
        tasks = super().get_read_tasks(parallelism, per_task_row_limit, data_context)
        return [type(t)(CrashOnce(t.read_fn, self.marker), t.metadata, t.schema) for t in tasks]


def test_a_failed_read_task_is_retried_with_the_same_rows(ray_local, bootstrap, make_topic, producer,
                                                          tmp_path):
    # The crashing classes live in this test module, which workers cannot import: ship them by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    topic = make_topic(partitions=2)
    fill(producer, topic, 2, 3000)
    marker = str(tmp_path / "crashed")
    source = CrashingDatasource(topic, bootstrap, marker=marker,
                                batch_limits=fray.datasource.BatchLimits(max_rows=500))
    got = rows(ray.data.read_datasource(source))
    assert os.path.exists(marker), "no read task crashed"
    assert [(r["partition"], r["offset"]) for r in got] == [(p, o) for p in range(2) for o in range(3000)]


def test_argument_errors(ray_local, bootstrap, make_topic, producer):
    topic = make_topic(partitions=1)
    fill(producer, topic, 1, 4)
    with pytest.raises(ConfigError, match="trigger"):
        fray.read_kafka(topic, bootstrap_servers=bootstrap, trigger="continuous")
    with pytest.raises(ConfigError, match="cannot be 'latest'"):
        fray.read_kafka(topic, bootstrap_servers=bootstrap, start_offset="latest")
    with pytest.raises(ConfigError, match="after end_offset"):
        fray.read_kafka(topic, bootstrap_servers=bootstrap, start_offset=5, end_offset=2)
    with pytest.raises(ConfigError, match="partition 7"):
        fray.read_kafka(topic, bootstrap_servers=bootstrap, start_offset={topic: {7: 0}})
    with pytest.raises(ConfigError, match="only one of"):
        fray.KafkaDatasource(topic, bootstrap, kafka_auth_config=object(), consumer_config={})
    with pytest.raises(UnknownTopicError, match="no-such-topic"):
        fray.read_kafka("no-such-topic", bootstrap_servers=bootstrap)
    with pytest.raises(ConfigError, match="start_offset 5"):
        fray.read_kafka(topic, bootstrap_servers=bootstrap, start_offset=5, end_offset="latest")


def test_formats_and_no_headers(ray_local, bootstrap, make_topic, producer):
    from fastsource.formats import Json, String

    topic = make_topic(partitions=1)
    for i in range(50):
        producer.produce(topic, value=b'{"n": %d}' % i, key=b"k")
    producer.flush(30)
    schema = pa.schema([("n", pa.int64())])
    ds = fray.read_kafka(topic, bootstrap_servers=bootstrap, value_format=Json(schema=schema),
                         key_format=String(), include_headers=False)
    got = rows(ds)
    assert ds.schema().base_schema.names == fray.KAFKA_SCHEMA.names[:7]
    assert [r["value"]["n"] for r in got] == list(range(50)) and got[0]["key"] == "k"


def test_ray_benchmark_quick_run(ray_local, bootstrap, capsys):
    """`fastsource bench --ray` keeps working (figures are not checked: bench/RESULTS.md has them)."""
    from fastsource.cli.main import main

    assert main(["bench", "--ray", "--messages", "20000", "--bootstrap", bootstrap, "--floor"]) == 0
    out = capsys.readouterr().out
    assert "fastsource.ray.read_kafka / ray.data.read_kafka" in out
    assert "Ray Data alone: 4 read tasks that only spend CPU" in out
    assert "4 tasks / fastsource.ray.read_kafka, 1 task" in out
    assert ray.is_initialized(), "the benchmark shut down a Ray it did not start"


def test_avro_values_decode_in_the_read_tasks(ray_local, bootstrap, make_topic, producer):
    """A compiled schema format travels to the read tasks (its plans are rebuilt there, once per worker)."""
    import io

    import fastavro

    from fastsource.formats.avro import Avro

    schema = {"type": "record", "name": "R", "fields": [{"name": "n", "type": "long"},
                                                        {"name": "tag", "type": ["null", "string"]}]}
    topic = make_topic(partitions=2)
    for i in range(60):
        out = io.BytesIO()
        fastavro.schemaless_writer(out, fastavro.parse_schema(schema), {"n": i, "tag": None if i % 2 else "t"})
        producer.produce(topic, value=out.getvalue(), partition=i % 2)
    producer.flush(30)
    ds = fray.read_kafka(topic, bootstrap_servers=bootstrap, value_format=Avro(schema=schema),
                         include_headers=False, min_read_tasks=4)
    values = sorted((r["value"]["n"], r["value"]["tag"]) for r in rows(ds))
    assert values == [(i, None if i % 2 else "t") for i in range(60)]


def test_a_read_task_reads_its_range_on_the_calling_thread_alone(ray_local, bootstrap, make_topic, producer):
    """Issue 19, item 4: a read task is one split reader and one emitter, reading on the task's own
    thread: no coordinator, fetcher or discovery thread starts while it reads, and it reads exactly
    its range."""
    import threading

    topic = make_topic(partitions=1)
    fill(producer, topic, 1, 300)
    source = fray.KafkaDatasource(topic, bootstrap, max_records_per_split=150,
                                  batch_limits=fray.datasource.BatchLimits(max_rows=50))
    _, second = source.get_read_tasks(1)
    before = {thread.ident for thread in threading.enumerate()}
    started: set[str] = set()
    offsets = []
    for block in second.read_fn():
        started |= {t.name for t in threading.enumerate() if t.ident not in before}
        offsets.extend(block.column("offset").to_pylist())
    assert offsets == list(range(150, 300))
    assert started == set()


def test_read_kafka_and_a_kafka_source_resolve_the_same_offsets(ray_local, bootstrap, make_topic, producer):
    """Both resolve through `resolve_specs`: the same start (a time, an offset, earliest) and end
    (latest, a time) give the same offsets per partition, including a time after the last record
    (the partition's end)."""
    import fastsource as fs
    from fastsource.kafka.enumerator.offsets import OffsetsInitializer

    topic = make_topic(partitions=2)
    fill(producer, topic, 2, 100)
    partitions = [(topic, 0), (topic, 1)]
    at = datetime.fromtimestamp((BASE_MS + 20_000) / 1000, tz=timezone.utc)
    late = datetime.fromtimestamp((BASE_MS + 60_500) / 1000, tz=timezone.utc)
    after_all = datetime(2100, 1, 1, tzinfo=timezone.utc)
    cases = [(at, "latest", OffsetsInitializer.timestamp(BASE_MS + 20_000), OffsetsInitializer.latest()),
             (40, late, OffsetsInitializer.offsets({tp: 40 for tp in partitions}),
              OffsetsInitializer.timestamp(BASE_MS + 60_500)),
             ("earliest", after_all, OffsetsInitializer.earliest(),
              OffsetsInitializer.timestamp(int(after_all.timestamp() * 1000)))]
    for start, end, starting, stopping in cases:
        planned = {(r.topic, r.partition): (r.start, r.stop)
                   for r in fray.KafkaDatasource(topic, bootstrap, start, end).partition_ranges()}
        source = fs.KafkaSource(bootstrap, topics=[topic], starting_offsets=starting,
                                stopping_offsets=stopping)
        admin = source.admin()
        resolved = {tp: (s, e) for (tp, s), e in zip(
            starting.resolve(admin, partitions).items(),
            stopping.resolve(admin, partitions, stopping=True).values())}
        assert planned == resolved, (start, end)
        table = source.read_all(parallelism=2)
        read = {tp: [] for tp in partitions}
        for p, o in zip(table.column("partition").to_pylist(), table.column("offset").to_pylist()):
            read[(topic, p)].append(o)
        assert read == {tp: list(range(*planned[tp])) for tp in partitions}, (start, end)
    assert planned == {tp: (0, 100) for tp in partitions}
