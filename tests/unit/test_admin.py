"""KafkaAdmin's handling of broker answers, with a scripted stand-in for confluent-kafka's AdminClient
and a fake clock (waits move its time on: no test sleeps)."""
from __future__ import annotations

import pickle
import threading
from concurrent.futures import Future
from types import SimpleNamespace
from typing import Callable, Optional

import pytest
from confluent_kafka import KafkaError, KafkaException

from fastsource.kafka.admin import BrokerHealth, Clock, KafkaAdmin
from fastsource.errors import AuthenticationError, BrokerUnavailableError, KafkaFetchError


class FakeClock(Clock):
    """Time that passes only when slept; `at(t, action)` runs `action` once time reaches t."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.slept: list[float] = []
        self._actions: list[tuple[float, Callable[[], None]]] = []

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float, wake: Optional[threading.Event] = None) -> None:
        if wake is not None and wake.is_set():
            return
        self.slept.append(seconds)
        self.t += seconds
        due = [action for when, action in self._actions if when <= self.t]
        self._actions = [(when, action) for when, action in self._actions if when > self.t]
        for action in due:
            action()

    def at(self, when: float, action: Callable[[], None]) -> None:
        self._actions.append((when, action))


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
        self.others_answer = False   # whether the metadata probe is answered during failures
        self.unanswered = 0          # answers of offset -1001 (a partition without a leader) first

    def list_topics(self, topic=None, timeout=None):
        if self.others_answer:
            return SimpleNamespace(brokers={1: None}, topics={})
        raise KafkaException(KafkaError(KafkaError._TRANSPORT, "scripted"))

    def poll(self, timeout):
        return 0

    def list_offsets(self, request, **_):
        self.calls += 1
        if self.errors:
            code, retriable = self.errors.pop(0)
            return {tp: _failed(code, retriable) for tp in request}
        if self.unanswered:
            self.unanswered -= 1
            return {tp: _done(SimpleNamespace(offset=-1001, timestamp=-1)) for tp in request}
        return {tp: _done(SimpleNamespace(offset=7, timestamp=-1)) for tp in request}


def _admin(client, timeout_s: float = 5.0, health: BrokerHealth | None = None,
           clock: FakeClock | None = None) -> KafkaAdmin:
    clock = clock or (health._clock if health is not None else FakeClock())
    admin = KafkaAdmin("127.0.0.1:1", timeout_s=timeout_s, health=health, clock=clock)
    admin._client = client
    return admin


def _health(broker_timeout_ms: int) -> BrokerHealth:
    return BrokerHealth("127.0.0.1:1", broker_timeout_ms=broker_timeout_ms, clock=FakeClock())


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


def test_retriable_errors_give_up_after_the_leader_change_allowance():
    """A partition without a leader is asked again with back-off pauses (20 ms doubling to 0.5 s)
    for LEADER_CHANGE_S (more than a short request timeout), then fails naming the error."""
    clock = FakeClock()
    client = ScriptedOffsetsClient(*[(KafkaError.NOT_LEADER_FOR_PARTITION, True)] * 1000)
    with pytest.raises(KafkaFetchError) as info:
        _admin(client, timeout_s=0.3, clock=clock).list_offsets([("t", 0)], "earliest")
    assert info.value.name == "NOT_LEADER_FOR_PARTITION"
    assert clock.slept[:6] == [0.02, 0.04, 0.08, 0.16, 0.32, 0.5] and set(clock.slept[5:]) == {0.5}
    assert KafkaAdmin.LEADER_CHANGE_S - 0.5 < sum(clock.slept) <= KafkaAdmin.LEADER_CHANGE_S
    assert client.calls == len(clock.slept) + 1


def test_a_broker_never_reached_fails_after_the_request_timeout():
    """Before a first answer, attempts repeat every 0.2 s until timeout_s, then fail naming it."""
    clock = FakeClock()
    client = ScriptedOffsetsClient(*[(KafkaError._TRANSPORT, True)] * 1000)
    started = clock.now()
    with pytest.raises(BrokerUnavailableError, match="127.0.0.1:1 within 0.5 s"):
        _admin(client, timeout_s=0.5, clock=clock).list_offsets([("t", 0)], "earliest")
    assert clock.now() - started == pytest.approx(0.6)
    assert client.calls == 4


def test_an_outage_after_the_first_answer_is_waited_out_up_to_the_broker_timeout():
    """Two silent attempts a second apart, then an answer: one outage of 2 s, over."""
    health = _health(60000)
    client = ScriptedOffsetsClient()
    admin = _admin(client, timeout_s=0.5, health=health)
    assert admin.list_offsets([("t", 0)], "earliest") == {("t", 0): 7}
    client.errors = [(KafkaError._TRANSPORT, True)] * 2
    assert admin.list_offsets([("t", 0)], "earliest") == {("t", 0): 7}
    assert client.calls == 4
    assert health.outages == 1 and health.down_for() == 0
    assert health.down_s() == pytest.approx(2.0)


def test_a_failure_while_other_brokers_answer_is_no_outage():
    """One broker down while the metadata probe is answered: a leader change, retried, no outage
    counted (broker_timeout_ms is not what bounds it)."""
    health = _health(1000)
    client = ScriptedOffsetsClient()
    admin = _admin(client, timeout_s=5.0, health=health)
    admin.list_offsets([("t", 0)], "earliest")
    client.errors = [(KafkaError._TRANSPORT, True)] * 4
    client.others_answer = True
    assert admin.list_offsets([("t", 0)], "earliest") == {("t", 0): 7}
    assert health.outages == 0 and health.down_s() == 0


def test_one_unanswered_probe_between_answered_ones_is_no_outage():
    """A failed request whose cluster probe goes unanswered once (it reached the broker that just
    died, or timed out on a loaded machine) and is answered when asked again is a leader change, not
    an outage: an outage needs two unanswered probes in a row."""
    class OneSilentProbe(ScriptedOffsetsClient):
        def list_topics(self, topic=None, timeout=None):
            self.probes = getattr(self, "probes", 0) + 1
            if self.probes == 1:
                raise KafkaException(KafkaError(KafkaError._TRANSPORT, "scripted"))
            return SimpleNamespace(brokers={1: None}, topics={})

    health = _health(60000)
    client = OneSilentProbe()
    admin = _admin(client, timeout_s=5.0, health=health)
    admin.list_offsets([("t", 0)], "earliest")
    client.errors = [(KafkaError._TRANSPORT, True)] * 3
    assert admin.list_offsets([("t", 0)], "earliest") == {("t", 0): 7}
    assert client.probes == 4  # unanswered, answered; then answered for each later failure
    assert health.outages == 0 and health.down_s() == 0


def test_a_failure_while_other_brokers_answer_ends_after_the_request_timeout():
    """A request that keeps failing while others answer fails after timeout_s, as a fetch error
    naming the situation, not as an outage."""
    client = ScriptedOffsetsClient()
    admin = _admin(client, timeout_s=0.5, health=_health(60000))
    admin.list_offsets([("t", 0)], "earliest")
    client.errors = [(KafkaError._TRANSPORT, True)] * 100_000
    client.others_answer = True
    with pytest.raises(KafkaFetchError, match=r"failed for 0\.5 s while other brokers answered"):
        admin.list_offsets([("t", 0)], "earliest")
    assert admin.health.outages == 0
    assert client.calls == 3  # the first answer, then attempts 0.5 s apart until timeout_s


def test_an_offset_of_a_partition_without_leader_is_asked_again_never_returned():
    """librdkafka answers -1001 without an error for a partition whose leader is down: that is asked
    again (it used to become a split's starting offset)."""
    client = ScriptedOffsetsClient()
    client.unanswered = 2
    client.others_answer = True
    assert _admin(client).list_offsets([("t", 0), ("t", 1)], "latest") == {("t", 0): 7, ("t", 1): 7}
    assert client.calls == 3


def _in_an_outage(broker_timeout_ms: int) -> KafkaAdmin:
    """An admin whose cluster answered once and then went silent for good."""
    client = ScriptedOffsetsClient()
    admin = _admin(client, timeout_s=0.5, health=_health(broker_timeout_ms))
    admin.list_offsets([("t", 0)], "earliest")
    client.errors = [(KafkaError._TRANSPORT, True)] * 100_000
    return admin


def test_an_outage_longer_than_the_broker_timeout_fails_naming_address_and_duration():
    """Silent attempts a second apart until the outage has lasted broker_timeout_ms."""
    admin = _in_an_outage(broker_timeout_ms=1500)
    started = admin._clock.now()
    with pytest.raises(BrokerUnavailableError,
                       match=r"127.0.0.1:1 for 2\.0 s \(broker_timeout_ms=1500\)"):
        admin.list_offsets([("t", 0)], "earliest")
    assert admin._clock.now() - started == pytest.approx(2.0)
    assert admin.health.outages == 1


def test_an_authentication_failure_is_reported_at_once_with_librdkafkas_reason():
    client = ScriptedOffsetsClient(*[(KafkaError._TRANSPORT, True)] * 1000)
    admin = _admin(client, timeout_s=30)
    admin._on_client_error(KafkaError(KafkaError._AUTHENTICATION, "SASL PLAIN mechanism handshake failed"))
    with pytest.raises(AuthenticationError, match="127.0.0.1:1.*SASL PLAIN mechanism handshake failed"):
        admin.list_offsets([("t", 0)], "earliest")
    assert client.calls == 1


def test_broker_health_warns_once_per_outage_and_ignores_stale_reports(caplog):
    health = _health(5000)
    clock = health._clock
    before = clock.now() - 2 * BrokerHealth.STALE_S
    with caplog.at_level("WARNING", logger="fastsource.kafka.admin"):
        for _ in range(3):
            health.down(clock.now())
        clock.sleep(3.0)
        health.up()
        health.up()
        health.down(before)          # silence that began before the last answer: stale
    assert health.outages == 1 and health.down_for() == 0 and health.down_s() == 3.0
    assert [r.getMessage().split(" ")[0] for r in caplog.records] == ["no", "Kafka"]
    assert "answers again after 3.0 s" in caplog.records[1].getMessage()


def test_broker_health_counts_silence_reported_just_after_an_answer():
    """A stopping broker may answer one client a moment after another lost it: that loss counts."""
    health = _health(5000)
    clock = health._clock
    lost = clock.now()
    clock.sleep(1.0)
    health.up()                         # the admin client's last answer, a second after the loss
    assert not health.answered_since(lost)
    health.down(lost)
    clock.sleep(0.5)
    assert health.outages == 1 and health.down_for() == 1.5


class ScriptedMetadataClient:
    """list_topics answers: topic `new` has LEADER_NOT_AVAILABLE `settling` times, then 2 partitions."""

    def __init__(self, settling: int) -> None:
        self.settling = settling
        self.calls = 0

    def poll(self, timeout):
        return 0

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


def test_closing_stops_waiting_out_an_outage():
    """A close during a 600 s outage allowance ends the request after the attempt under way."""
    admin = _in_an_outage(broker_timeout_ms=600_000)
    clock = admin._clock
    started = clock.now()
    clock.at(started + 3.5, admin.close)
    with pytest.raises(BrokerUnavailableError, match=r"for 4\.0 s"):
        admin.list_offsets([("t", 0)], "earliest")
    assert clock.now() - started == pytest.approx(4.0)


def test_a_pickled_health_carries_no_counts_and_says_so():
    health = _health(5000)
    health.down(health._clock.now())
    copy = pickle.loads(pickle.dumps(health))
    assert health.outages == 1 and not health.reporting
    assert copy.outages == 0 and copy.down_s() == 0 and copy.reporting
    assert (copy.bootstrap_servers, copy.broker_timeout_ms) == ("127.0.0.1:1", 5000)


def test_what_a_reporting_copy_saw_counts_in_the_health_it_reports_to():
    """A remote reader's outage (seen by its copy) reaches the stream's health once, with its
    duration, as ages: the two sides' monotonic clocks need not agree."""
    stream, remote = _health(5000), BrokerHealth("127.0.0.1:1", 5000, clock=FakeClock(), reporting=True)
    remote._clock.t = 50.0                  # another process: another clock
    remote.down(remote._clock.now())
    remote.down(remote._clock.now())        # the same outage, seen by a second client
    remote._clock.sleep(3.0)
    remote.up()
    remote.up()
    remote._clock.sleep(1.0)
    stream.apply_reports(remote.take_reports())
    assert remote.take_reports() == []
    assert stream.outages == 1 and stream.down_for() == 0 and stream.down_s() == pytest.approx(3.0)
    remote.down(remote._clock.now())        # an outage still going on
    stream._clock.sleep(2.0)
    remote._clock.sleep(2.0)
    stream.apply_reports(remote.take_reports())
    assert stream.outages == 2 and stream.down_for() == pytest.approx(2.0)


def test_a_health_that_is_not_a_copy_keeps_no_reports():
    health = _health(5000)
    health.down(health._clock.now())
    health.up()
    assert health.take_reports() == []
