"""franz-go's kfake as the suite's second Kafka implementation: its launcher (built once per source,
three brokers on loopback, a clear error without Go, refused commands named), and the places where
kfake answers differently from Apache Kafka, pinned on both."""
from __future__ import annotations

import shutil
import socket
import time

import pytest
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from fastsource.broker import kfake
from fastsource.errors import BrokerError
from fastsource.kafka.admin import KafkaAdmin, _transient


def test_the_launcher_is_built_once_per_source_and_reused(kfake_cluster):
    built = kfake.kfake_binary()
    assert built.name == f"fastsource-kfake-{kfake._source_digest()}"
    modified = built.stat().st_mtime_ns
    assert kfake.kfake_binary() == built and built.stat().st_mtime_ns == modified


def test_an_edited_launcher_source_gets_a_binary_of_its_own(tmp_path, monkeypatch):
    before = kfake._source_digest()
    for name in kfake.SOURCE_FILES:
        shutil.copyfile(kfake.SOURCE_DIR / name, tmp_path / name)
    with open(tmp_path / "main.go", "a") as main:
        main.write("\n// edited\n")
    monkeypatch.setattr(kfake, "SOURCE_DIR", tmp_path)
    assert kfake._source_digest() != before


def test_without_go_the_error_names_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTSOURCE_HOME", str(tmp_path))  # nothing built here
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(BrokerError, match=r"`go` is not on PATH; it is needed to build franz-go's kfake"):
        kfake.KfakeCluster().start()


def test_three_brokers_listen_on_loopback_below_the_ephemeral_range(kfake_cluster):
    brokers = AdminClient({"bootstrap.servers": kfake_cluster.address}).list_topics(timeout=10).brokers
    assert len(brokers) == 3
    assert {b.host for b in brokers.values()} == {"127.0.0.1"}
    assert all(b.port < 32768 for b in brokers.values())


def test_stop_ends_the_cluster_and_frees_its_port():
    cluster = kfake.KfakeCluster(brokers=1)
    address = cluster.start()
    port = int(address.rsplit(":", 1)[1])
    cluster.stop()
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0
    with pytest.raises(BrokerError, match="not running"):
        cluster.leader("t", 0)


def test_a_command_the_launcher_refuses_is_an_error_naming_the_cause(kfake_cluster):
    with pytest.raises(BrokerError, match='unknown Kafka error "NO_SUCH_ERROR"'):
        kfake_cluster.fault("Fetch", "NO_SUCH_ERROR")
    with pytest.raises(BrokerError, match=r"partition no-such-topic\[0\] does not exist"):
        kfake_cluster.move_leader("no-such-topic", 0)


@pytest.mark.kfake
def test_kfake_answers_offsets_of_a_group_that_never_committed_with_group_id_not_found(
        request, bootstrap, make_topic):
    """Apache Kafka answers an OffsetFetch for a group it does not know with offset -1 (no commit);
    kfake answers GROUP_ID_NOT_FOUND, which confluent-kafka raises. fastsource reads both as 'no
    committed offset'."""
    topic = make_topic(partitions=2)
    group = f"never-{topic}"
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    deadline = time.monotonic() + 30
    try:
        while True:  # a coordinator still loading (a broker's first group) answers a retriable error
            try:
                answer = consumer.committed([TopicPartition(topic, 0)], timeout=10)[0].offset
            except KafkaException as exc:
                if _transient(exc.args[0]) and time.monotonic() < deadline:
                    time.sleep(0.2)
                    continue
                answer = exc.args[0].name()
            break
    finally:
        consumer.close()
    kfake_answers = request.node.callspec.params["bootstrap"] == "kfake"
    assert answer == ("GROUP_ID_NOT_FOUND" if kfake_answers else -1001)
    assert KafkaAdmin(bootstrap).committed(group, [(topic, 0), (topic, 1)]) == \
        {(topic, 0): None, (topic, 1): None}
    assert KafkaAdmin(bootstrap).committed(group, None) == {}
