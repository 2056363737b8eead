"""Every wrong argument of the public API is refused at once with a ConfigError naming it (never a raw
TypeError or AttributeError, never a failure later in a background thread)."""
import pyarrow as pa
import pytest

import fastsource as fs
from fastsource.formats import Function, Json, String, as_format

BOOTSTRAP = "127.0.0.1:9"


def source(**kwargs):
    kwargs.setdefault("topics", ["t"])
    return fs.KafkaSource(kwargs.pop("bootstrap_servers", BOOTSTRAP), **kwargs)


CASES = [
    ("bootstrap_servers", lambda: source(bootstrap_servers=9092)),
    ("topics", lambda: source(topics=5)),
    ("topics", lambda: source(topics=[b"t"])),
    ("topics", lambda: source(topics={"t": 1})),
    ("topic_pattern", lambda: source(topics=None, topic_pattern=5)),
    ("partitions", lambda: source(topics=None, partitions=5)),
    ("partitions", lambda: source(topics=None, partitions=[("t", "0")])),
    ("partitions", lambda: source(topics=None, partitions=[("t", -1)])),
    ("group_id", lambda: source(group_id=7)),
    ("starting_offsets", lambda: source(starting_offsets="earliest")),
    ("stopping_offsets", lambda: source(stopping_offsets="latest")),
    ("value_format", lambda: source(value_format="json")),
    ("value_format", lambda: source(value_format=Json)),  # the class, not an instance
    ("key_format", lambda: source(key_format=3)),
    ("include_headers", lambda: source(include_headers="yes")),
    ("partition_discovery_interval_ms", lambda: source(partition_discovery_interval_ms="10")),
    ("partition_discovery_interval_ms", lambda: source(partition_discovery_interval_ms=-1)),
    ("properties", lambda: source(properties=["a=b"])),
    ("properties", lambda: source(properties={1: "x"})),
    ("batch_limits", lambda: source(batch_limits={"max_rows": 5})),
    ("request_timeout_s", lambda: source(request_timeout_s="15")),
    ("request_timeout_s", lambda: source(request_timeout_s=0)),
    ("broker_timeout_ms", lambda: source(broker_timeout_ms=1.5)),
    ("watermark_strategy", lambda: source(watermark_strategy=5)),
    ("parallelism", lambda: source().open(parallelism="2")),
    ("parallelism", lambda: source().open(parallelism=0)),
    ("checkpoint_dir", lambda: source().open(checkpoint_dir=5)),
    ("parallelism", lambda: source().read_all(parallelism=2.0)),
    ("reset", lambda: fs.OffsetsInitializer.committed(reset=["earliest"])),
    ("reset", lambda: fs.OffsetsInitializer.committed(reset="newest")),
    ("ms", lambda: fs.OffsetsInitializer.timestamp("yesterday")),
    ("ms", lambda: fs.OffsetsInitializer.timestamp(None)),
    ("offsets", lambda: fs.OffsetsInitializer.offsets([("t", 0, 5)])),
    ("offsets", lambda: fs.OffsetsInitializer.offsets({"t": 5})),
    ("offsets", lambda: fs.OffsetsInitializer.offsets({("t", 0): "5"})),
    ("out_of_orderness_ms", lambda: fs.WatermarkStrategy(out_of_orderness_ms="5")),
    ("idle_timeout_ms", lambda: fs.WatermarkStrategy(idle_timeout_ms=[1])),
    ("alignment_max_drift_ms", lambda: fs.WatermarkStrategy(alignment_max_drift_ms=-1)),
    ("emit_in_metadata", lambda: fs.WatermarkStrategy(emit_in_metadata="no")),
    ("max_rows", lambda: fs.BatchLimits(max_rows="10")),
    ("max_bytes", lambda: fs.BatchLimits(max_bytes=None)),
    ("max_wait_ms", lambda: fs.BatchLimits(max_wait_ms=1.5)),
    ("errors", lambda: String(errors=None)),
    ("errors", lambda: Json(errors=["raise"])),
    ("schema", lambda: Json(schema=[("a", pa.int64())])),
    ("max_depth", lambda: Json(max_depth="64")),
    ("fn", lambda: Function("upper")),
    ("output_type", lambda: Function(len, output_type="int64")),
    ("format", lambda: as_format(None)),
    ("directory", lambda: fs.ParquetDatasetSink(5)),
    ("max_rows_per_file", lambda: fs.ParquetDatasetSink("out", max_rows_per_file="many")),
    ("compression", lambda: fs.ParquetDatasetSink("out", compression="rar")),
]


@pytest.mark.parametrize("argument, make", CASES, ids=[f"{a}-{i}" for i, (a, _) in enumerate(CASES)])
def test_a_wrong_argument_is_a_config_error_naming_it(argument, make, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(fs.ConfigError) as info:
        make()
    assert argument in str(info.value)


@pytest.mark.parametrize("servers", ["http://broker:9092", "host:99999", "host:0", "host:", "not a host",
                                     "a:9092,,b:9092", "a:9092,", " , ", "::1:9092", "[::1", "[zz]:9092",
                                     "host:90ab", "ftp://h:1"])
def test_a_malformed_bootstrap_string_is_refused_naming_it(servers):
    with pytest.raises(fs.ConfigError, match="bootstrap_servers") as info:
        fs.KafkaSource(servers, topics=["t"])
    assert repr(servers) in str(info.value)


@pytest.mark.parametrize("servers", ["localhost:9092", "127.0.0.1:9092,127.0.0.1:9093", "kafka-1.example.com",
                                     "[::1]:9092", "SASL_SSL://b1.internal:9094", "b_1:1, b_2:65535"])
def test_well_formed_bootstrap_strings_are_accepted(servers):
    assert fs.KafkaSource(servers, topics=["t"]).bootstrap_servers == servers
