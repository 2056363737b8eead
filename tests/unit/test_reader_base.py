"""The reader base with a scripted split reader: hand-over semantics, back-pressure, wake-up,
end of input, error surfacing, pause/resume and clean shutdown. No broker."""
from __future__ import annotations

import threading
import time

import pyarrow as pa
import pytest

from fastsource.kafka import _consumer
from fastsource.runtime.transport import InProcessTransport
from fastsource.base.reader.elements_queue import FutureCompletingBlockingQueue
from fastsource.kafka.reader.emitter import KafkaRecordEmitter
from fastsource.base.events import AddSplitEvent, NoMoreSplitsEvent
from fastsource.base.reader.fetcher import SingleThreadFetcherManager
from fastsource.formats import Binary
from fastsource.base.reader.source_reader import InputStatus
from fastsource.kafka.reader.source_reader import KafkaSourceReader
from fastsource.kafka.split import KafkaPartitionSplit
from fastsource.base.reader.split_reader import RecordsWithSplitIds

SCHEMA = _consumer.raw_schema(False)


def raw_batch(topic: str, partition: int, offsets: list[int]) -> pa.RecordBatch:
    n = len(offsets)
    return pa.RecordBatch.from_arrays([
        pa.DictionaryArray.from_arrays(pa.array([0] * n, pa.int32()), pa.array([topic])),
        pa.array([partition] * n, pa.int32()), pa.array(offsets, pa.int64()),
        pa.array([1000 + o for o in offsets], pa.timestamp("ms", tz="UTC")),
        pa.array([1] * n, pa.int8()), pa.array([None] * n, pa.binary()),
        pa.array([b"v%d" % o for o in offsets], pa.binary())], schema=SCHEMA)


class ScriptedSplitReader:
    """Serves `per_fetch` records per fetch from each split until its stopping offset; blocks (until
    woken or 30 s) when it has nothing to serve; can be told to fail."""

    def __init__(self, per_fetch: int = 5) -> None:
        self.per_fetch = per_fetch
        self.splits: dict[str, list[int]] = {}   # split id -> [topic, partition, next, stop]
        self.fetches = 0
        self.paused: set[str] = set()
        self.fail_with: Exception | None = None
        self.fail_after: int | None = None     # fetches that succeed before fail_with is raised
        self.closed = False
        self._wake = threading.Event()

    def add_splits(self, splits):
        for s in splits:
            self.splits[s.split_id] = [s.topic, s.partition, s.starting_offset, s.stopping_offset]

    def remove_splits(self, ids):
        for i in ids:
            self.splits.pop(i, None)

    def pause_or_resume_splits(self, pause, resume):
        self.paused |= set(pause)
        self.paused -= set(resume)

    def fetch(self) -> RecordsWithSplitIds:
        self.fetches += 1
        if self.fail_with is not None and (self.fail_after is None or self.fetches > self.fail_after):
            raise self.fail_with
        for split_id, (topic, partition, nxt, stop) in list(self.splits.items()):
            if split_id in self.paused:
                continue
            if nxt >= stop:
                del self.splits[split_id]
                return RecordsWithSplitIds(None, [], [split_id])
            offsets = list(range(nxt, min(stop, nxt + self.per_fetch)))
            self.splits[split_id][2] = offsets[-1] + 1
            return RecordsWithSplitIds(raw_batch(topic, partition, offsets),
                                       [(split_id, offsets[-1] + 1, 1000 + offsets[-1], len(offsets), 0)])
        self._wake.wait(30)
        self._wake.clear()
        return RecordsWithSplitIds(None)

    def observe(self):
        return {"high_watermarks": {}, "stats": {}}

    def wake_up(self):
        self._wake.set()

    def close(self):
        self.closed = True


def make_reader(split_reader: ScriptedSplitReader):
    transport = InProcessTransport()
    manager = SingleThreadFetcherManager(FutureCompletingBlockingQueue(2), lambda: split_reader)
    emitter = KafkaRecordEmitter(SCHEMA, Binary(), Binary())
    return KafkaSourceReader(0, transport, manager, emitter, commit_offsets=False), transport


def poll_batch(reader, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        output = reader.poll_next()
        if output.batch is not None or output.status is InputStatus.END_OF_INPUT:
            return output.status, output.batch
        reader.available.wait(0.05)
        reader.available.clear()
    raise AssertionError("no batch in time")


def wait_until(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_split_state_advances_when_a_batch_is_handed_over_not_when_fetched():
    scripted = ScriptedSplitReader(per_fetch=5)
    reader, _ = make_reader(scripted)
    try:
        reader.add_splits([KafkaPartitionSplit("t", 0, 10, 100)])
        wait_until(lambda: scripted.fetches >= 3)  # batches are queued, none handed over yet
        assert reader.states["t-0"].current_offset == 10
        status, batch = poll_batch(reader)
        assert status is InputStatus.MORE_AVAILABLE
        assert batch.column("offset").to_pylist() == [10, 11, 12, 13, 14]
        assert reader.states["t-0"].current_offset == 15
        assert reader.states["t-0"].max_timestamp == 1014
    finally:
        reader.close()


def test_queue_back_pressure_bounds_fetching_ahead():
    scripted = ScriptedSplitReader(per_fetch=1)
    reader, _ = make_reader(scripted)
    try:
        reader.add_splits([KafkaPartitionSplit("t", 0, 0, 1000)])
        fetch_task = reader._fetcher_manager.fetcher()._fetch_task
        # two batches in the queue and one held by the fetch task waiting to be handed over
        wait_until(lambda: len(reader._queue) == 2 and fetch_task.pending is not None)
        assert scripted.fetches == 3
        poll_batch(reader)
        wait_until(lambda: scripted.fetches == 4)
    finally:
        reader.close()


def test_wake_up_lets_new_splits_in_while_a_fetch_blocks():
    scripted = ScriptedSplitReader()
    reader, _ = make_reader(scripted)
    try:
        reader.add_splits([KafkaPartitionSplit("t", 0, 0, 100)])
        reader.pause_or_resume_splits(["t-0"], [])
        wait_until(lambda: scripted.paused == {"t-0"})
        while reader.poll_next().batch is not None:  # hand over what was fetched before the pause
            pass
        fetches = scripted.fetches
        time.sleep(0.3)
        assert scripted.fetches == fetches  # blocked in a fetch: nothing to serve
        started = time.monotonic()
        reader.add_splits([KafkaPartitionSplit("t", 1, 0, 3)])
        batch = poll_batch(reader)[1]
        while batch.column("partition")[0].as_py() == 0:  # a batch of t-0 fetched before the pause
            batch = poll_batch(reader)[1]
        assert time.monotonic() - started < 5  # the blocked fetch would otherwise last 30 s
        assert batch.column("partition").to_pylist() == [1, 1, 1]
    finally:
        reader.close()


def test_end_of_input_after_no_more_splits_and_all_finished():
    scripted = ScriptedSplitReader(per_fetch=10)
    reader, transport = make_reader(scripted)
    try:
        transport.send_to_reader(0, AddSplitEvent((KafkaPartitionSplit("t", 0, 0, 4),)))
        status, batch = poll_batch(reader)
        assert batch.num_rows == 4
        assert reader.poll_next().status is not InputStatus.END_OF_INPUT  # no NoMoreSplits yet
        transport.send_to_reader(0, NoMoreSplitsEvent())
        status, batch = poll_batch(reader)
        assert status is InputStatus.END_OF_INPUT and batch is None
        assert reader.finished_split_ids == ["t-0"]
    finally:
        reader.close()


def test_a_fetcher_error_surfaces_on_the_reader_thread():
    scripted = ScriptedSplitReader()
    scripted.fail_with = RuntimeError("broker exploded")
    reader, _ = make_reader(scripted)
    try:
        reader.add_splits([KafkaPartitionSplit("t", 0, 0, 10)])
        with pytest.raises(RuntimeError, match="broker exploded"):
            poll_batch(reader)
    finally:
        reader.close()
    assert scripted.closed


def test_batches_fetched_before_an_error_are_returned_before_it():
    scripted = ScriptedSplitReader(per_fetch=3)
    scripted.fail_with = RuntimeError("record too large")
    scripted.fail_after = 2
    reader, _ = make_reader(scripted)
    offsets = []
    try:
        reader.add_splits([KafkaPartitionSplit("t", 0, 0, 100)])
        wait_until(lambda: scripted.fetches > 2)  # both batches queued, the error recorded
        with pytest.raises(RuntimeError, match="record too large"):
            while True:
                _, batch = poll_batch(reader)
                offsets += batch.column("offset").to_pylist()
    finally:
        reader.close()
    assert offsets == [0, 1, 2, 3, 4, 5]
    assert reader.states["t-0"].current_offset == 6


def test_pause_and_resume_reach_the_split_reader():
    scripted = ScriptedSplitReader(per_fetch=2)
    reader, _ = make_reader(scripted)
    try:
        reader.add_splits([KafkaPartitionSplit("t", 0, 0, 100)])
        reader.pause_or_resume_splits(["t-0"], [])
        wait_until(lambda: scripted.paused == {"t-0"})
        reader.pause_or_resume_splits([], ["t-0"])
        wait_until(lambda: scripted.paused == set())
        assert poll_batch(reader)[1].num_rows == 2
    finally:
        reader.close()


def test_close_leaves_no_thread_behind():
    scripted = ScriptedSplitReader()
    reader, _ = make_reader(scripted)
    reader.add_splits([KafkaPartitionSplit("t", 0, 0, 10 ** 9)])
    wait_until(lambda: scripted.fetches >= 1)
    reader.close()
    assert scripted.closed
    assert not [t for t in threading.enumerate() if t.name.startswith("fastsource-")]


def test_each_output_carries_its_lineage_and_the_splits_taken_on():
    scripted = ScriptedSplitReader(per_fetch=5)
    reader, _ = make_reader(scripted)
    split = KafkaPartitionSplit("t", 0, 10, 20)
    try:
        reader.add_splits([split])
        outputs = []
        deadline = time.monotonic() + 10
        while not any(o.finished for o in outputs):
            assert time.monotonic() < deadline
            output = reader.poll_next()
            if output.status is InputStatus.MORE_AVAILABLE:
                outputs.append(output)
            else:
                reader.available.wait(0.05)
                reader.available.clear()
    finally:
        reader.close()
    assert outputs[0].added == (split,)
    lineage = [(e.split_id, e.first_offset, e.next_offset, e.records) for o in outputs for e in o.lineage]
    assert lineage == [("t-0", 10, 15, 5), ("t-0", 15, 20, 5)]
    assert outputs[-1].finished == ("t-0",)
