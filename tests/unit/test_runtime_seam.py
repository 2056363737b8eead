"""The seam between the coordinator and the readers, without a broker: messages are plain data, the
coordinator's mailbox, tracker and alignment, error mapping and what is fatal."""
from __future__ import annotations

import pickle
import threading

import pytest

from fastsource.kafka import _consumer
from fastsource.errors import (BrokerUnavailableError, ConfigError, CoreError, DecodeError, KafkaFetchError,
                               OffsetOutOfRangeError, RecordTooLargeError, is_fatal)
from fastsource.kafka.reader.split_reader import map_core_error
from fastsource.base import events
from fastsource.kafka.events import SplitsRemovedEvent
from fastsource.runtime.coordinator import SourceCoordinator
from fastsource.base.transport import Transport
from fastsource.runtime.transport import InProcessTransport, PicklingTransport
from fastsource.kafka.enumerator.kafka_enumerator import group_offsets
from fastsource.kafka.split import KafkaPartitionSplit, serialize_split

SPLIT = KafkaPartitionSplit.range_split("t", 0, 10, 20)
EVENTS = [events.ReaderRegistrationEvent(1),
          events.AddSplitEvent((SPLIT, KafkaPartitionSplit("t", 1, 0, None))),
          events.NoMoreSplitsEvent(), events.SourceEventWrapper(SplitsRemovedEvent((("t", 0),)), 1),
          events.ReportedWatermarkEvent(1, 123, True), events.WatermarkAlignmentEvent(456),
          events.ReaderFailedEvent(1, {"t-0": 5})]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_every_message_is_plain_picklable_data(event):
    assert pickle.loads(pickle.dumps(event)) == event


@pytest.mark.parametrize("message", [lambda: None, threading.Lock()], ids=["closure", "lock"])
def test_the_pickling_transport_refuses_what_a_process_boundary_would(message):
    """A message that could not cross to another process fails with a TypeError naming its type,
    and nothing is delivered, either way."""
    transport = PicklingTransport()
    received: list = []
    transport.bind_coordinator(received.append)
    transport.bind_reader(0, received.append)
    for send in (transport.send_to_coordinator, lambda event: transport.send_to_reader(0, event)):
        with pytest.raises(TypeError, match=f"{type(message).__name__} cannot cross a process boundary"):
            send(message)
    assert received == []


@pytest.mark.parametrize("transport_class", [InProcessTransport, PicklingTransport])
def test_every_transport_carries_messages_both_ways_and_drops_those_for_a_gone_reader(transport_class):
    """The whole Transport interface, as every runtime uses it (RayRuntime too: in its driver and in
    each reader's actor)."""
    transport: Transport = transport_class()
    to_coordinator: list = []
    to_reader: list = []
    with pytest.raises(RuntimeError, match="no coordinator is bound"):
        transport.send_to_coordinator(events.ReaderRegistrationEvent(0))
    transport.bind_coordinator(to_coordinator.append)
    transport.bind_reader(3, to_reader.append)
    transport.send_to_coordinator(events.ReaderRegistrationEvent(3))
    transport.send_to_reader(3, events.NoMoreSplitsEvent())
    transport.send_to_reader(4, events.NoMoreSplitsEvent())  # never bound: dropped
    transport.unbind_reader(3)
    transport.send_to_reader(3, events.WatermarkAlignmentEvent(1))
    assert to_coordinator == [events.ReaderRegistrationEvent(3)]
    assert to_reader == [events.NoMoreSplitsEvent()]


class FakeEnumerator:
    def __init__(self, fail_snapshot: bool = False) -> None:
        self.fail_snapshot = fail_snapshot
        self.readers: list[int] = []
        self.back: list = []

    def start(self):
        pass

    def close(self):
        pass

    def add_reader(self, reader_id):
        self.readers.append(reader_id)

    def snapshot_state(self, checkpoint_id):
        if self.fail_snapshot:
            raise OSError("disk full")
        return {"checkpoint": checkpoint_id}

    def add_splits_back(self, splits, reader_id):
        self.back.append((reader_id, splits))


def make_coordinator(enumerator, parallelism=2, drift=None):
    transport = PicklingTransport()
    received: dict[int, list] = {i: [] for i in range(parallelism)}
    for i in range(parallelism):
        transport.bind_reader(i, received[i].append)
    failures: list = []
    coordinator = SourceCoordinator(transport, parallelism, failures.append, drift)
    coordinator.start(enumerator)
    return coordinator, transport, received, failures


def settle(coordinator):
    """Wait until the coordinator has handled everything put in its mailbox before."""
    coordinator.run_in_coordinator(lambda: None).result(10)


def test_a_failing_snapshot_fails_its_checkpoint_not_the_coordinator():
    enumerator = FakeEnumerator(fail_snapshot=True)
    coordinator, _, _, failures = make_coordinator(enumerator)
    try:
        with pytest.raises(OSError, match="disk full"):
            coordinator.snapshot(1).result(10)
        enumerator.fail_snapshot = False
        assert coordinator.snapshot(2).result(10) == ({"checkpoint": 2}, [])
        assert failures == []
    finally:
        coordinator.close()


def test_the_tracker_gives_a_failed_readers_splits_back_at_their_positions():
    enumerator = FakeEnumerator()
    coordinator, transport, received, _ = make_coordinator(enumerator)
    try:
        transport.send_to_coordinator(events.ReaderRegistrationEvent(1))
        settle(coordinator)
        other = KafkaPartitionSplit("t", 1, 0, 50)
        coordinator.run_in_coordinator(lambda: coordinator.assign_splits({1: [SPLIT, other]})).result(10)
        assert received[1] == [events.AddSplitEvent((SPLIT, other))]
        coordinator.splits_finished([other.split_id])
        assert coordinator.snapshot(1).result(10)[1] == [SPLIT]
        back = coordinator.reader_failed(events.ReaderFailedEvent(1, {SPLIT.split_id: 15})).result(10)
        assert back == [SPLIT.with_starting_offset(15)]
        assert enumerator.back == [(1, [SPLIT.with_starting_offset(15)])]
        assert coordinator.registered_readers() == set()
    finally:
        coordinator.close()


def test_alignment_is_decided_from_the_watermarks_readers_report():
    coordinator, transport, received, _ = make_coordinator(FakeEnumerator(), drift=100)
    try:
        for reader in (0, 1):
            transport.send_to_coordinator(events.ReaderRegistrationEvent(reader))
        transport.send_to_coordinator(events.ReportedWatermarkEvent(0, 1000))
        settle(coordinator)
        assert received[0] == received[1] == []  # reader 1 has not reported: no combined watermark
        transport.send_to_coordinator(events.ReportedWatermarkEvent(1, 5000))
        settle(coordinator)
        assert received[0] == received[1] == [events.WatermarkAlignmentEvent(1100)]
        transport.send_to_coordinator(events.ReportedWatermarkEvent(0, None, active=False))
        settle(coordinator)  # an idle reader no longer holds the others back
        assert received[1][-1] == events.WatermarkAlignmentEvent(5100)
    finally:
        coordinator.close()


@pytest.mark.parametrize("code,expected", [(1, OffsetOutOfRangeError), (10, RecordTooLargeError),
                                           (-195, KafkaFetchError)])
def test_core_fetch_errors_keep_their_code_and_coordinates(code, expected):
    error = map_core_error(CoreError(code, "NAME", "reason", "t", 3, 42), "127.0.0.1:1")
    assert type(error) is expected
    assert (error.code, error.name, error.topic, error.partition, error.offset) == (code, "NAME", "t", 3, 42)


def test_a_core_error_for_every_broker_lost_names_the_address():
    error = map_core_error(CoreError(-187, "_ALL_BROKERS_DOWN", "3/3 brokers are down", None, -1, -1),
                           "127.0.0.1:1")
    assert type(error) is BrokerUnavailableError
    assert str(error) == "lost every broker of 127.0.0.1:1 for broker_timeout_ms: 3/3 brokers are down"


def test_other_core_failures_become_config_or_fetch_errors_naming_the_cause():
    invalid = map_core_error(ValueError("invalid Kafka client property x"), "b:1")
    assert type(invalid) is ConfigError and str(invalid) == "invalid Kafka client property x"
    closed = map_core_error(RuntimeError("the consumer is closed"), "b:1")
    assert type(closed) is KafkaFetchError
    assert str(closed) == "the consumer of b:1 failed: the consumer is closed"


def test_what_is_fatal():
    assert is_fatal(OffsetOutOfRangeError("lost"))
    assert is_fatal(DecodeError("bad", "t", 0, 1))
    assert is_fatal(BrokerUnavailableError("gone"))
    assert is_fatal(ConfigError("bad"))
    assert is_fatal(KafkaFetchError("auth", code=58))
    assert not is_fatal(KafkaFetchError("leader moved", code=6, retriable=True))
    assert not is_fatal(RuntimeError("unexpected crash"))
    assert is_fatal(MemoryError())


def test_the_group_offset_is_the_end_of_the_completed_contiguous_prefix():
    # ranges of t[0]: [0,100) finished, [100,200) at 150, [200,300) pending at 200; t[1] all done
    state = {"pending_splits": [serialize_split(KafkaPartitionSplit.range_split("t", 0, 200, 300))],
             "partition_ends": [["t", 0, 300], ["t", 1, 80]]}
    assigned = [KafkaPartitionSplit.range_split("t", 0, 100, 200).with_starting_offset(150)]
    assert group_offsets(state, assigned) == [("t", 0, 150), ("t", 1, 80)]


def test_messages_reach_a_reader_in_order_from_any_thread():
    transport = PicklingTransport()
    got: list = []
    transport.bind_reader(0, got.append)
    sender = threading.Thread(target=lambda: [transport.send_to_reader(0, events.WatermarkAlignmentEvent(i))
                                              for i in range(100)])
    sender.start()
    sender.join(10)
    assert [e.max_watermark for e in got] == list(range(100))
    transport.unbind_reader(0)
    transport.send_to_reader(0, events.NoMoreSplitsEvent())  # a gone reader: dropped
    assert len(got) == 100


def _batch(rows):
    """A raw-schema batch of (partition, offset) rows of topic t."""
    import pyarrow as pa

    schema = _consumer.raw_schema(False)
    n = len(rows)
    return pa.RecordBatch.from_arrays([
        pa.DictionaryArray.from_arrays(pa.array([0] * n, pa.int32()), pa.array(["t"])),
        pa.array([p for p, _ in rows], pa.int32()), pa.array([o for _, o in rows], pa.int64()),
        pa.array([0] * n, pa.timestamp("ms", tz="UTC")), pa.array([0] * n, pa.int8()),
        pa.array([None] * n, pa.binary()), pa.array([None] * n, pa.binary())], schema=schema)


def test_read_all_puts_ranges_read_by_several_readers_in_offset_order():
    from fastsource.base.reader.source_reader import SplitLineage
    from fastsource.source import _in_offset_order

    low, high = KafkaPartitionSplit.range_split("t", 0, 0, 4), KafkaPartitionSplit.range_split("t", 0, 4, 8)
    other = KafkaPartitionSplit("t", 1, 0, 4)
    # reader B hands out the upper range of t[0] first, mixed with t[1]; reader A the lower one
    batches = [(_batch([(0, 4), (1, 0), (0, 5), (1, 1)]), (SplitLineage(high, 4, 6, -1, 2, 0),
                                                           SplitLineage(other, 0, 2, -1, 2, 0))),
               (_batch([(0, 0), (0, 1), (0, 2), (0, 3)]), (SplitLineage(low, 0, 4, -1, 4, 0),)),
               (_batch([(0, 6), (1, 2), (0, 7), (1, 3)]), (SplitLineage(high, 6, 8, -1, 2, 0),
                                                           SplitLineage(other, 2, 4, -1, 2, 0)))]
    table = _in_offset_order(batches, _consumer.raw_schema(False))
    rows = list(zip(table.column("partition").to_pylist(), table.column("offset").to_pylist()))
    assert [o for p, o in rows if p == 0] == list(range(8))
    assert [o for p, o in rows if p == 1] == list(range(4))
