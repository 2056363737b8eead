"""`fastsource.polars.scan_kafka` against the real broker: each kind of pushdown fetches fewer records
(the stream's `metrics()["records"]`, reported through `on_read`) and returns exactly what the same
query gives over a full read, on a topic whose timestamps are out of order."""
from __future__ import annotations

import datetime as dt
import json
import random

import polars as pl
import pyarrow as pa
import pytest

import fastsource as fs
from fastsource.errors import DecodeError
from fastsource.polars import scan_kafka

PARTITIONS = 4
PER_PARTITION = 1500
BASE_MS = 1_764_158_400_000                  # 2025-11-26T12:00:00Z
STEP_MS = 1000
DISORDER_MS = 5000                           # a record lies up to 5 s before the largest timestamp before it
SCHEMA = pa.schema([("id", pa.int64()), ("kind", pa.string()), ("amount", pa.float64())])
SMALL_BATCHES = fs.BatchLimits(max_rows=100)
# The topics are module fixtures on the default version's broker (`kafka_bootstrap`), so every test
# here runs against that broker only.
pytestmark = pytest.mark.one_kafka_version


def at(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc)


@pytest.fixture(scope="module")
def events(kafka_bootstrap):
    """A 4-partition topic of JSON events whose timestamps step 1 s per record but are shuffled by up
    to DISORDER_MS within each partition (so offsets-for-times cannot simply bound both sides)."""
    bootstrap = kafka_bootstrap
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    import uuid

    topic = f"scan-{uuid.uuid4().hex[:10]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, PARTITIONS, 1, config={"retention.ms": "-1"})])[topic].result()
    rng = random.Random(7)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    out_of_order = 0
    for partition in range(PARTITIONS):
        largest = 0
        for i in range(PER_PARTITION):
            ts = BASE_MS + i * STEP_MS - rng.randrange(0, DISORDER_MS + 1)
            out_of_order += ts < largest
            largest = max(largest, ts)
            record_id = partition * PER_PARTITION + i
            value = {"id": record_id, "kind": ["view", "click"][record_id % 2], "amount": record_id * 0.5}
            producer.produce(topic, key=f"user-{record_id}", value=json.dumps(value), partition=partition,
                             timestamp=ts, headers=[("source", b"test")])
    producer.flush(30)
    assert out_of_order > PER_PARTITION  # the topic really is out of order
    yield topic
    admin.delete_topics([topic])[topic].result()


def scan(bootstrap, topic, reports, **kwargs):
    kwargs.setdefault("value_format", fs.formats.Json(schema=SCHEMA))
    return scan_kafka(bootstrap, topics=[topic], batch_limits=SMALL_BATCHES, on_read=reports.append,
                      **kwargs)


def ordered(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.sort("partition", "offset")


@pytest.fixture(scope="module")
def full(kafka_bootstrap, events):
    """Every record, read through the scan without any pushdown, checked against read_all()."""
    bootstrap = kafka_bootstrap
    reports = []
    frame = scan(bootstrap, events, reports, include_headers=True).collect()
    assert reports[-1]["records"] == PARTITIONS * PER_PARTITION
    table = fs.KafkaSource(bootstrap, topics=[events], value_format=fs.formats.Json(schema=SCHEMA),
                           include_headers=True).read_all()
    assert frame.height == table.num_rows
    expected = pl.from_arrow(table).with_columns(pl.col("topic").cast(pl.String))
    assert ordered(frame).equals(ordered(expected))
    return frame


def test_time_lower_bound_starts_each_partition_at_its_offsets_for_times(bootstrap, events, full):
    """`timestamp >= t` starts every partition at its first record at or after t: the records before
    are not fetched, and the out-of-order records after that point are all kept or dropped rightly."""
    reports = []
    since = at(BASE_MS + 1200 * STEP_MS)
    got = scan(bootstrap, events, reports).filter(pl.col("timestamp") >= since).collect()
    expected = full.drop("headers").filter(pl.col("timestamp") >= since)
    assert ordered(got).equals(ordered(expected))
    assert got.height > 0
    assert reports[-1]["records"] < PARTITIONS * (PER_PARTITION - 1200 + DISORDER_MS // STEP_MS + 1)


def test_time_range_on_out_of_order_timestamps_is_exact_and_stops_early(bootstrap, events, full):
    """With `max_out_of_orderness_ms`, an upper bound stops each partition at the first record at or
    after bound + disorder; the rows of `is_between` are exactly the full read's."""
    reports = []
    low, high = at(BASE_MS + 500 * STEP_MS), at(BASE_MS + 700 * STEP_MS)
    query = pl.col("timestamp").is_between(low, high)
    lf = scan(bootstrap, events, reports, max_out_of_orderness_ms=DISORDER_MS)
    got = lf.filter(query).collect()
    expected = full.drop("headers").filter(query)
    assert ordered(got).equals(ordered(expected))
    assert got.height > PARTITIONS * 190
    fetched = reports[-1]["records"]
    assert fetched <= PARTITIONS * (200 + 2 * (DISORDER_MS // STEP_MS) + 2)
    for (_, partition), (start, stop) in reports[-1]["ranges"].items():
        assert start <= expected.filter(pl.col("partition") == partition)["offset"].min()
        assert stop > expected.filter(pl.col("partition") == partition)["offset"].max()


def test_time_upper_bound_without_an_order_promise_reads_to_the_end_and_stays_exact(bootstrap, events, full):
    """Without `max_out_of_orderness_ms` nothing is known about the order of timestamps: an upper
    bound cannot stop a partition early (a later record may still be earlier in time)."""
    reports = []
    query = (pl.col("timestamp") >= at(BASE_MS + 1000 * STEP_MS)) & (pl.col("timestamp") < at(BASE_MS + 1100 * STEP_MS))
    got = scan(bootstrap, events, reports).filter(query).collect()
    assert ordered(got).equals(ordered(full.drop("headers").filter(query)))
    assert all(stop == PER_PARTITION for _, stop in reports[-1]["ranges"].values())
    assert reports[-1]["records"] < PARTITIONS * (PER_PARTITION - 1000 + DISORDER_MS // STEP_MS + 1)


def test_partition_and_offset_filters_narrow_the_partitions_and_ranges_read(bootstrap, events, full):
    reports = []
    query = pl.col("partition").is_in([1, 3]) & (pl.col("offset") >= 100) & (pl.col("offset") < 150)
    got = scan(bootstrap, events, reports).filter(query).collect()
    assert ordered(got).equals(ordered(full.drop("headers").filter(query)))
    assert got.height == 2 * 50
    assert reports[-1]["records"] == 2 * 50
    assert sorted(p for _, p in reports[-1]["ranges"]) == [1, 3]

    got = scan(bootstrap, events, reports).filter(pl.col("partition") == 2).select("offset").collect()
    assert got["offset"].to_list() == list(range(PER_PARTITION))
    assert reports[-1]["records"] == PER_PARTITION


def test_a_filter_that_matches_nothing_reads_nothing(bootstrap, events):
    reports = []
    got = scan(bootstrap, events, reports).filter(pl.col("offset") >= PER_PARTITION).collect()
    assert got.height == 0 and got.columns == full_columns()
    assert reports[-1]["records"] == 0 and reports[-1]["ranges"] == {}


def full_columns():
    return ["topic", "partition", "offset", "timestamp", "timestamp_type", "key", "value"]


def test_columns_not_asked_for_are_not_decoded(bootstrap, make_topic, producer):
    """Values that the format cannot decode do not fail a query that does not use them; the same
    query asking for the value does. The key format is called only when `key` is selected."""
    topic = make_topic(partitions=1)
    for i in range(20):
        producer.produce(topic, key=b"k", value=b"not json", partition=0)
    producer.flush(30)
    calls = []

    def key_format(raw: pa.Array) -> pa.Array:
        calls.append(len(raw))
        return raw.cast(pa.string())

    reports = []
    lf = scan(bootstrap, topic, reports, key_format=fs.formats.Function(key_format, pa.string()))
    assert lf.select("offset").collect()["offset"].to_list() == list(range(20))
    assert calls == []
    with pytest.raises(DecodeError):
        lf.select("value").collect()
    assert lf.select("key").collect()["key"].to_list() == ["k"] * 20
    assert sum(calls) == 20


def test_headers_are_built_only_when_selected(bootstrap, events, full):
    reports = []
    lf = scan(bootstrap, events, reports, include_headers=True)
    assert "headers" in lf.collect_schema()
    got = lf.filter(pl.col("partition") == 0).select("offset", "headers").collect()
    assert got.height == PER_PARTITION
    assert got["headers"][0].to_list() == [{"key": "source", "value": b"test"}]


def test_the_read_of_a_query_copies_no_key_value_or_headers_it_does_not_use(bootstrap, events):
    """The source a query reads with: its readers' batches hold null keys and values (the compiled
    core copies no bytes of them) and no headers column when the query does not select them."""
    from fastsource.polars import ReadPlan, _Scan

    arguments = dict(bootstrap_servers=bootstrap, topics=[events], include_headers=True,
                     value_format=fs.formats.Json(schema=SCHEMA))
    scan_ = _Scan(arguments, None, False, None, None)
    plan = ReadPlan({(events, 1): (0, 200)})
    with scan_.read_source(plan, ["offset", "timestamp"]).open() as stream:
        table = pa.Table.from_batches(list(stream))
    assert table.num_rows == 200 and "headers" not in table.column_names
    assert table.column("key").null_count == 200 and table.column("value").null_count == 200
    with scan_.read_source(plan, ["key", "value", "headers"]).open() as stream:
        table = pa.Table.from_batches(list(stream))
    assert table.column("key").null_count == 0 and table.column("value").null_count == 0
    assert table.column("value").type == pa.struct(list(SCHEMA))
    assert table.column("headers").to_pylist()[0] == [{"key": "source", "value": b"test"}]


def test_unnested_json_decodes_only_the_fields_asked_for(bootstrap, make_topic, producer):
    """With `unnest_value=True` a Json value's fields are columns, and a query converts only those it
    uses: a field of the wrong type fails only the queries that read it."""
    topic = make_topic(partitions=1)
    for i in range(30):
        producer.produce(topic, value=json.dumps({"id": i, "kind": {"nested": True}, "amount": i / 2}),
                         partition=0)
    producer.produce(topic, value=None, partition=0)  # a null value: null fields
    producer.flush(30)
    reports = []
    lf = scan(bootstrap, topic, reports, unnest_value=True)
    assert lf.collect_schema().names()[-3:] == ["id", "kind", "amount"]
    got = lf.filter(pl.col("amount") >= 10).select("id").collect()
    assert got["id"].to_list() == list(range(20, 30))
    assert lf.filter(pl.col("offset") == 30).select("id", "amount").collect().row(0) == (None, None)
    with pytest.raises(DecodeError):
        lf.select("kind").collect()


def test_head_stops_the_read_early(bootstrap, events, full):
    reports = []
    got = scan(bootstrap, events, reports).head(5).collect()
    assert got.height == 5
    assert reports[-1]["records"] < PARTITIONS * PER_PARTITION / 2
    rows = full.drop("headers")
    for row in got.iter_rows(named=True):  # each is a real record
        assert rows.filter((pl.col("partition") == row["partition"]) & (pl.col("offset") == row["offset"])).height == 1


def test_an_unbounded_scan_is_bounded_at_the_end_seen_when_the_query_starts(bootstrap, make_topic, producer):
    """The LazyFrame is planned per query: records produced after scan_kafka() but before collect()
    are read, and the query ends at the end it saw when it started."""
    topic = make_topic(partitions=2)
    for i in range(10):
        producer.produce(topic, value=str(i).encode(), partition=i % 2)
    producer.flush(30)
    reports = []
    lf = scan_kafka(bootstrap, topics=[topic], on_read=reports.append)
    assert lf.collect().height == 10
    for i in range(10, 16):
        producer.produce(topic, value=str(i).encode(), partition=i % 2)
    producer.flush(30)
    assert lf.collect().height == 16
    assert reports[-1]["ranges"] == {(topic, 0): (0, 8), (topic, 1): (0, 8)}


def test_a_format_without_a_known_type_is_refused_up_front(bootstrap, events):
    with pytest.raises(fs.ConfigError, match="value_format=Json\\(schema=...\\)"):
        scan_kafka(bootstrap, topics=[events], value_format=fs.formats.Json())
    with pytest.raises(fs.ConfigError, match="unnest_value"):
        scan_kafka(bootstrap, topics=[events], value_format=fs.formats.String(), unnest_value=True)
    with pytest.raises(fs.ConfigError, match="max_out_of_orderness_ms"):
        scan_kafka(bootstrap, topics=[events], max_out_of_orderness_ms=-1)
