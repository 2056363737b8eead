"""librdkafka's connection errors in a few plain words, matched to the bootstrap addresses as
librdkafka names them."""
from fastsource.kafka.admin import bootstrap_addresses, connect_cause


def test_causes_are_said_plainly_and_unknown_ones_keep_librdkafkas_reason():
    refused = ("127.0.0.1:9/bootstrap: Connect to ipv4#127.0.0.1:9 failed: Connection refused (after 0ms "
               "in state CONNECT)")
    assert connect_cause(refused).startswith("connection refused (nothing listens on that port")
    assert connect_cause("h.invalid:1/bootstrap: Failed to resolve 'h.invalid:1': Name or service not "
                         "known (after 3ms in state CONNECT)") == "the host name does not resolve"
    assert "does not speak the Kafka protocol" in connect_cause(
        "10.0.0.1:80/bootstrap: Receive failed: Invalid response size 1213486160 (0..100000000): "
        "increase receive.message.max.bytes (after 0ms in state APIVERSION_QUERY)")
    assert connect_cause("a:1/bootstrap: Something new happened (after 5ms in state UP)") == \
        "Something new happened"


def test_bootstrap_addresses_drop_the_security_protocol_prefix():
    assert bootstrap_addresses("PLAINTEXT://a:9092, b:9093,") == ["a:9092", "b:9093"]
