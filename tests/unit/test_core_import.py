"""The compiled core imports, runs on confluent-kafka's librdkafka, and rejects bad properties."""
import confluent_kafka
import pytest

import fastsource
from fastsource.kafka import _consumer


def test_core_uses_the_librdkafka_confluent_kafka_ships():
    assert _consumer.librdkafka_version() == confluent_kafka.libversion()[0]


def test_one_librdkafka_in_the_process():
    with open("/proc/self/maps") as maps:
        libs = {line.split()[-1] for line in maps if "librdkafka" in line}
    assert len(libs) == 1


def test_bad_property_names_the_property():
    with pytest.raises(ValueError, match="no.such.property"):
        _consumer.Consumer({"no.such.property": "1"})


def test_raw_schema_columns():
    assert _consumer.raw_schema(True).names == ["topic", "partition", "offset", "timestamp",
                                             "timestamp_type", "key", "value", "headers"]
    assert fastsource.__version__
