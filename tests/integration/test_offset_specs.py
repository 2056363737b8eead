"""`--from` / `--to` offset specs against a real topic: no silent fallback, documented defaults."""
from __future__ import annotations

import pytest

import fastsource as fs
from fastsource.cli.specs import starting_offsets, stopping_offsets


def read(bootstrap: str, topic: str, start: str = "earliest", stop: str = "latest") -> list:
    source = fs.KafkaSource(bootstrap, topics=[topic], starting_offsets=starting_offsets(start, [topic]),
                            stopping_offsets=stopping_offsets(stop, [topic]))
    table = source.read_all(parallelism=1)
    return sorted(zip(table.column("partition").to_pylist(), table.column("offset").to_pylist()))


@pytest.fixture
def topic(make_topic, producer):
    name = make_topic(partitions=2)
    for i in range(20):
        producer.produce(name, b"x", partition=i % 2)
    producer.flush()
    return name


def test_a_start_past_the_end_is_an_error_naming_the_range(bootstrap, topic):
    with pytest.raises(fs.OffsetOutOfRangeError, match=rf"offset 999999 of {topic}\[0\].*ends at 10"):
        read(bootstrap, topic, start="0=999999")


def test_a_partition_that_does_not_exist_is_an_error(bootstrap, topic):
    with pytest.raises(fs.ConfigError, match=rf"{topic}\[9\]"):
        read(bootstrap, topic, start="9=5")


def test_partitions_not_named_keep_the_default_with_a_warning(bootstrap, topic, caplog):
    assert read(bootstrap, topic, stop="0=3") == [(0, 0), (0, 1), (0, 2)] + [(1, o) for o in range(10)]
    assert any(f"{topic}[1]" in r.getMessage() and "stop at latest" in r.getMessage()
               for r in caplog.records)
    assert read(bootstrap, topic, start="1=8") == [(0, o) for o in range(10)] + [(1, 8), (1, 9)]


def test_a_stop_before_the_start_is_an_error(bootstrap, topic):
    with pytest.raises(fs.ConfigError, match=rf"stopping offset 2 of {topic}\[0\] is before its starting offset 5"):
        read(bootstrap, topic, start="0=5,1=0", stop="0=2,1=3")
