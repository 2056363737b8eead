"""KafkaAdmin's handling of broker answers, with a scripted stand-in for confluent-kafka's AdminClient."""
from __future__ import annotations

from concurrent.futures import Future
from types import SimpleNamespace

import pytest
from confluent_kafka import KafkaError, KafkaException

from fastsource.io.admin import KafkaAdmin
from fastsource.errors import BrokerUnavailableError, KafkaFetchError


def _failed(code: int, retriable: bool) -> Future:
    future: Future = Future()
    future.set_exception(KafkaException(KafkaError(code, "scripted", retriable=retriable)))
    return future


def _done(value) -> Future:
    future: Future = Future()
    future.set_result(value)
    return future


class ScriptedOffsetsClient:
    """Answers list_offsets with the scripted errors first, then with offset 7 for every partition."""

    def __init__(self, *errors: tuple[int, bool]) -> None:
        self.errors = list(errors)
        self.calls = 0

    def list_offsets(self, request, **_):
        self.calls += 1
        if self.errors:
            code, retriable = self.errors.pop(0)
            return {tp: _failed(code, retriable) for tp in request}
        return {tp: _done(SimpleNamespace(offset=7, timestamp=-1)) for tp in request}


def _admin(client, timeout_s: float = 5.0) -> KafkaAdmin:
    admin = KafkaAdmin("127.0.0.1:1", timeout_s=timeout_s)
    admin._client = client
    return admin


def test_a_partition_still_electing_its_leader_is_asked_again():
    client = ScriptedOffsetsClient((KafkaError.NOT_LEADER_FOR_PARTITION, True),
                                   (KafkaError.LEADER_NOT_AVAILABLE, True))
    offsets = _admin(client).list_offsets([("t", 0), ("t", 1)], "earliest")
    assert offsets == {("t", 0): 7, ("t", 1): 7}
    assert client.calls == 3


def test_transient_codes_are_retried_without_librdkafkas_retriable_flag():
    # confluent-kafka raises per-partition list_offsets errors with retriable() False, even for a
    # leader that is still being elected right after the topic was created.
    client = ScriptedOffsetsClient((KafkaError.UNKNOWN_TOPIC_OR_PART, False),
                                   (KafkaError.NOT_LEADER_FOR_PARTITION, False),
                                   (KafkaError.LEADER_NOT_AVAILABLE, False))
    offsets = _admin(client).list_offsets([("t", 0)], "latest")
    assert offsets == {("t", 0): 7}
    assert client.calls == 4


def test_a_non_retriable_error_fails_at_once_with_its_name():
    client = ScriptedOffsetsClient((KafkaError.TOPIC_AUTHORIZATION_FAILED, False))
    with pytest.raises(KafkaFetchError, match="list offsets") as info:
        _admin(client).list_offsets([("t", 0)], "latest")
    assert info.value.name == "TOPIC_AUTHORIZATION_FAILED"
    assert client.calls == 1


def test_retriable_errors_give_up_after_the_timeout():
    client = ScriptedOffsetsClient(*[(KafkaError.NOT_LEADER_FOR_PARTITION, True)] * 1000)
    with pytest.raises(KafkaFetchError) as info:
        _admin(client, timeout_s=0.3).list_offsets([("t", 0)], "earliest")
    assert info.value.name == "NOT_LEADER_FOR_PARTITION"
    assert 2 <= client.calls < 1000


def test_an_unreachable_broker_is_not_retried():
    client = ScriptedOffsetsClient((KafkaError._TRANSPORT, True))
    with pytest.raises(BrokerUnavailableError, match="127.0.0.1:1"):
        _admin(client).list_offsets([("t", 0)], "earliest")
    assert client.calls == 1


class ScriptedMetadataClient:
    """list_topics answers: topic `new` has LEADER_NOT_AVAILABLE `settling` times, then 2 partitions."""

    def __init__(self, settling: int) -> None:
        self.settling = settling
        self.calls = 0

    def list_topics(self, timeout):
        self.calls += 1
        busy = self.calls <= self.settling
        error = KafkaError(KafkaError.LEADER_NOT_AVAILABLE, retriable=True) if busy else None
        topics = {"new": SimpleNamespace(error=error, partitions={} if busy else {0: None, 1: None}),
                  "old": SimpleNamespace(error=None, partitions={0: None})}
        return SimpleNamespace(topics=topics)


def test_a_wanted_topic_being_created_is_waited_for():
    client = ScriptedMetadataClient(settling=2)
    assert _admin(client).topics(wanted={"new"}.__contains__) == {"new": 2, "old": 1}
    assert client.calls == 3


def test_an_unwanted_settling_topic_does_not_delay_the_answer():
    client = ScriptedMetadataClient(settling=1000)
    assert _admin(client).topics(wanted={"old"}.__contains__) == {"old": 1}
    assert client.calls == 1
