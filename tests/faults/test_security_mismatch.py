"""A client configured for SASL or TLS against the PLAINTEXT test broker: an AuthenticationError with
librdkafka's reason within seconds, on the admin (discovery) path and on the reader path."""
from __future__ import annotations

import time

import pytest

import fastsource as fs
from fastsource.kafka.reader.split_reader import KafkaPartitionSplitReader, consumer_config
from fastsource.kafka.split import KafkaPartitionSplit

SASL = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
        "sasl.username": "user", "sasl.password": "secret"}
TLS = {"security.protocol": "SSL"}


@pytest.mark.parametrize("properties, reason", [(SASL, "SASL PLAIN mechanism handshake failed"),
                                                (TLS, "SSL handshake failed")])
def test_discovery_reports_the_mismatch_at_once(bootstrap, make_topic, properties, reason):
    topic = make_topic()
    started = time.monotonic()
    with pytest.raises(fs.AuthenticationError, match=reason) as failure:
        fs.KafkaSource(bootstrap, topics=[topic], properties=properties).read_all(parallelism=1)
    assert bootstrap in str(failure.value)
    assert time.monotonic() - started < 8


@pytest.mark.parametrize("properties, reason", [(SASL, "SASL PLAIN mechanism handshake failed"),
                                                (TLS, "SSL handshake failed")])
def test_a_reader_reports_the_mismatch_at_once(bootstrap, make_topic, properties, reason):
    topic = make_topic()
    reader = KafkaPartitionSplitReader(consumer_config(bootstrap, None, properties))
    try:
        reader.add_splits([KafkaPartitionSplit(topic, 0, 0, None)])
        started = time.monotonic()
        with pytest.raises(fs.AuthenticationError, match=reason):
            while time.monotonic() - started < 30:
                reader.fetch()
        assert time.monotonic() - started < 8
    finally:
        reader.close()
