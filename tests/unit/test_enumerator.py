"""The enumerator against a fake context (scheduled callables run by hand) and a fake admin."""
from __future__ import annotations

from collections import Counter

import pytest

from fastsource.kafka.enumerator.kafka_enumerator import (KafkaSourceEnumerator, assign_owners, java_string_hash,
                                                    split_owner)
from fastsource.kafka.split import KafkaPartitionSplit
from fastsource.errors import UnknownTopicError
from fastsource.kafka.events import SplitsRemovedEvent
from fastsource.kafka.enumerator.offsets import OffsetsInitializer
from fastsource.kafka.enumerator.subscriber import TopicListSubscriber, TopicPatternSubscriber


class FakeAdmin:
    """Topic metadata and offsets held in memory."""

    bootstrap_servers = "fake:9092"

    def __init__(self, topics: dict[str, int], earliest: int = 0, latest: int = 100) -> None:
        self.partition_counts = dict(topics)
        self.earliest, self.latest = earliest, latest
        self.ids: dict[str, str] = {}  # topic ids; a topic not listed has id "<topic>-id"

    def topics(self, wanted=None):
        return dict(self.partition_counts)

    def topic_ids(self, topics):
        return {t: self.ids.get(t, f"{t}-id") for t in topics if t in self.partition_counts}

    def list_offsets(self, partitions, query):
        value = {"earliest": self.earliest, "latest": self.latest}.get(query, 50)
        return {tp: value for tp in partitions}

    def committed(self, group_id, partitions):
        return {tp: None for tp in partitions}


class FakeContext:
    def __init__(self, parallelism: int) -> None:
        self.parallelism = parallelism
        self.readers: set[int] = set()
        self.assigned: dict[int, list] = {}
        self.no_more: list[int] = []
        self.events: list = []
        self.calls: list = []

    def current_parallelism(self):
        return self.parallelism

    def registered_readers(self):
        return set(self.readers)

    def assign_splits(self, assignment):
        for reader, splits in assignment.items():
            assert reader in self.readers
            self.assigned.setdefault(reader, []).extend(splits)

    def signal_no_more_splits(self, reader_id):
        self.no_more.append(reader_id)

    def send_event_to_reader(self, reader_id, event):
        self.events.append((reader_id, event))

    def call_async(self, callable_, handler, initial_delay_ms=0, period_ms=0):
        self.calls.append((callable_, handler, period_ms))

    def run_calls(self):
        """Run every scheduled callable and its handler (calls scheduled meanwhile too); one-shot
        calls are then dropped, periodic ones stay."""
        i = 0
        while i < len(self.calls):
            callable_, handler, _ = self.calls[i]
            try:
                result, error = callable_(), None
            except Exception as exc:
                result, error = None, exc
            handler(result, error)
            i += 1
        self.calls = [call for call in self.calls if call[2] > 0]


# split_owner's answers, computed once from Java's String.hashCode of the topic names
OWNERS_EVENTS_3 = [2, 0, 1, 2, 0]
OWNERS_ORDERS_4 = [3, 0, 1, 2, 3]


def make(admin, context, subscriber=None, stopping=OffsetsInitializer.latest(), **kw):
    return KafkaSourceEnumerator(subscriber or TopicListSubscriber(["a"]), admin, context,
                                 OffsetsInitializer.earliest(), stopping, **kw)


def test_java_string_hash_matches_java():
    assert java_string_hash("") == 0
    assert java_string_hash("hello") == 99162322
    assert java_string_hash("events-topic-with-a-long-name") == -677631397  # "...".hashCode() in Java
    assert java_string_hash("polygenelubricants") == -2147483648


def test_owner_is_balanced_and_deterministic():
    """Balanced, and the same in every process (no dependence on Python's salted str hash): the
    owners are pinned to known values."""
    owners = Counter(split_owner("events", p, 3) for p in range(30))
    assert owners == Counter({0: 10, 1: 10, 2: 10})
    assert [split_owner("events", p, 3) for p in range(5)] == OWNERS_EVENTS_3
    assert [split_owner("orders", p, 4) for p in range(5)] == OWNERS_ORDERS_4


def test_ranges_of_one_partition_go_to_different_readers():
    splits = [KafkaPartitionSplit.range_split("a", 0, start, start + 10) for start in (0, 10, 20)]
    owners = assign_owners(splits, 3)
    assert sorted(len(v) for v in owners.values()) == [1, 1, 1]
    first = split_owner("a", 0, 3)
    assert owners[first] == [splits[0]] and owners[(first + 1) % 3] == [splits[1]]


def test_bounded_partitions_are_cut_into_ranges():
    context, _ = started(FakeAdmin({"a": 1}), parallelism=2, readers=(0, 1), min_splits=4)
    splits = sorted(s for r in context.assigned.values() for s in r)
    assert [s.split_id for s in sorted(splits, key=lambda s: s.starting_offset)] == \
        ["a-0@0-25", "a-0@25-50", "a-0@50-75", "a-0@75-100"]
    assert {len(v) for v in context.assigned.values()} == {2}


def started(admin, parallelism=1, readers=(0,), **kw):
    """An enumerator started with `readers` registered and its scheduled calls run once."""
    context = FakeContext(parallelism)
    enumerator = make(admin, context, **kw)
    enumerator.start()
    context.readers.update(readers)
    context.run_calls()
    return context, enumerator


def test_restore_reresolves_the_end_of_finished_partitions():
    """A bounded read restored after it finished goes on to the partition's new end: exactly the
    records that arrived since."""
    admin = FakeAdmin({"a": 1})
    state = started(admin)[1].snapshot_state(1)  # a-0 [0, 100) assigned, then finished
    admin.latest = 130
    restored_context, _ = started(admin, state=state, restored_splits=[])
    assert [(s.starting_offset, s.stopping_offset) for s in restored_context.assigned[0]] == [(100, 130)]
    assert restored_context.no_more == [0]


def test_restore_with_an_unbounded_source_continues_past_the_old_end():
    state = started(FakeAdmin({"a": 1}))[1].snapshot_state(1)
    half = KafkaPartitionSplit("a", 0, 40, 100)
    restored_context, _ = started(FakeAdmin({"a": 1}), stopping=None, state=state, restored_splits=[half])
    assert restored_context.assigned[0] == [KafkaPartitionSplit("a", 0, 40, None)]


def test_splits_wait_for_their_reader_then_no_more_splits():
    context = FakeContext(parallelism=2)
    enumerator = make(FakeAdmin({"a": 4}), context)
    enumerator.start()
    context.readers.add(0)
    context.run_calls()
    assert {s.partition for s in context.assigned[0]} == {p for p in range(4) if split_owner("a", p, 2) == 0}
    assert 1 not in context.assigned and context.no_more == [0]
    context.readers.add(1)
    enumerator.add_reader(1)
    assert {s.partition for s in context.assigned[1]} == {p for p in range(4) if split_owner("a", p, 2) == 1}
    assert context.no_more == [0, 1]
    assert all(s.starting_offset == 0 and s.stopping_offset == 100 for r in context.assigned.values()
               for s in r)


def test_unbounded_source_never_signals_no_more_splits_and_discovers_periodically():
    context = FakeContext(parallelism=1)
    admin = FakeAdmin({"a": 1})
    enumerator = make(admin, context, subscriber=TopicPatternSubscriber("a|b"), stopping=None,
                      discovery_interval_ms=1000)
    enumerator.start()
    assert context.calls[0][2] == 1000
    context.readers.add(0)
    context.run_calls()
    admin.partition_counts.update({"a": 2, "b": 1})
    admin.earliest = 7  # partitions discovered later start at their earliest offset
    context.run_calls()
    splits = {s.split_id: s for s in context.assigned[0]}
    assert set(splits) == {"a-0", "a-1", "b-0"}
    assert splits["a-1"].starting_offset == 7 and splits["b-0"].starting_offset == 7
    assert all(s.stopping_offset is None for s in splits.values())
    assert context.no_more == []


class Clock:
    """A monotonic clock moved by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def checks_until_deleted(context, clock, seconds_between=1.0, limit=50):
    """Run the periodic checks, `seconds_between` apart, until a SplitsRemovedEvent went out;
    returns how many checks it took."""
    for n in range(1, limit + 1):
        clock.now += seconds_between
        context.run_calls()
        if context.events:
            return n
    raise AssertionError("no partition was ever counted as deleted")


def test_deleted_partitions_end_their_splits_with_an_event():
    context, clock = FakeContext(parallelism=1), Clock()
    admin = FakeAdmin({"a": 2})
    enumerator = make(admin, context, stopping=None, discovery_interval_ms=1000, clock=clock)
    enumerator.start()
    context.readers.add(0)
    context.run_calls()
    del admin.partition_counts["a"]
    checks_until_deleted(context, clock)
    assert context.events == [(0, SplitsRemovedEvent((("a", 0), ("a", 1))))]


class ScriptedAdmin(FakeAdmin):
    """Answers each metadata request with the next partition counts of a script (then the last)."""

    def __init__(self, script: list[dict[str, int]]) -> None:
        super().__init__(script[0])
        self.script = list(script)

    def topics(self, wanted=None):
        answer = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        return dict(answer)


def test_a_partition_missing_from_metadata_for_a_while_is_not_deleted():
    """A restarting broker answers for a while without a topic, or with fewer partitions: while it
    is missing for fewer than three checks or for less than deletion_confirm_ms, nothing ends."""
    context, clock = FakeContext(parallelism=1), Clock()
    admin = ScriptedAdmin([{"a": 2}, {}, {}, {"a": 1}, {"a": 2}, {}, {}, {}, {}, {"a": 2}])
    enumerator = make(admin, context, stopping=None, discovery_interval_ms=300,
                      deletion_confirm_ms=10000, clock=clock)
    enumerator.start()
    context.readers.add(0)
    context.run_calls()  # {"a": 2}: both partitions assigned
    assert sorted(s.split_id for s in context.assigned[0]) == ["a-0", "a-1"]
    for _ in range(3):  # {}, {}, {"a": 1}: a[1] missing three times, but within 6 s
        clock.now += 3
        context.run_calls()
    clock.now += 3
    context.run_calls()  # {"a": 2}: a[1] is back, its misses are forgotten
    for _ in range(4):  # {} four times, 0.3 s apart: more than three checks, under 10 s
        clock.now += 0.3
        context.run_calls()
    clock.now += 0.3
    context.run_calls()  # {"a": 2}
    assert context.events == []
    assert sorted(s.split_id for s in context.assigned[0]) == ["a-0", "a-1"]  # nothing reassigned


def test_a_partition_counts_as_deleted_after_three_misses_over_the_confirmation_time():
    context, clock = FakeContext(parallelism=1), Clock()
    admin = ScriptedAdmin([{"a": 2}, {"a": 1}])
    enumerator = make(admin, context, stopping=None, discovery_interval_ms=300,
                      deletion_confirm_ms=2000, clock=clock)
    enumerator.start()
    context.readers.add(0)
    context.run_calls()
    assert checks_until_deleted(context, clock, seconds_between=0.5) == 5  # 0 s, 0.5 s ... 2 s
    assert context.events == [(0, SplitsRemovedEvent((("a", 1),)))]
    clock.now += 5
    context.run_calls()  # a[1] is no longer known: no second event
    assert len(context.events) == 1


def test_missing_topic_at_start_is_an_error_naming_it():
    context = FakeContext(parallelism=1)
    enumerator = make(FakeAdmin({"a": 1}), context, subscriber=TopicListSubscriber(["a", "zzz"]))
    enumerator.start()
    with pytest.raises(UnknownTopicError, match="zzz"):
        context.run_calls()


def test_add_splits_back_reassigns_to_the_reregistered_reader():
    context = FakeContext(parallelism=1)
    enumerator = make(FakeAdmin({"a": 2}), context)
    enumerator.start()
    context.readers.add(0)
    context.run_calls()
    returned = context.assigned.pop(0)
    enumerator.add_splits_back(returned, 0)
    assert sorted(context.assigned[0]) == sorted(returned)
    assert context.no_more == [0, 0]


def test_snapshot_and_restore_keep_pending_splits_and_known_partitions():
    state = started(FakeAdmin({"a": 4}), parallelism=2)[1].snapshot_state(1)
    # nothing new on restore: every partition is already known
    restored_context, _ = started(FakeAdmin({"a": 4}), parallelism=2, readers=(0, 1), state=state)
    pending_for_1 = {p for p in range(4) if split_owner("a", p, 2) == 1}
    assert {s.partition for s in restored_context.assigned[1]} == pending_for_1
    assert sum(len(v) for v in restored_context.assigned.values()) == len(pending_for_1)


def test_bounded_source_checks_for_deletions_but_adds_no_new_partitions():
    context, clock = FakeContext(parallelism=1), Clock()
    admin = FakeAdmin({"a": 1})
    enumerator = make(admin, context, deletion_check_interval_ms=250, clock=clock)
    enumerator.start()
    assert context.calls[0][2] == 250
    context.readers.add(0)
    context.run_calls()
    admin.partition_counts["a"] = 3
    context.run_calls()
    assert [s.split_id for s in context.assigned[0]] == ["a-0"]
    del admin.partition_counts["a"]
    checks_until_deleted(context, clock, seconds_between=5)
    assert context.events == [(0, SplitsRemovedEvent((("a", 0),)))]


def test_min_splits_counts_splits_over_all_partitions_not_per_partition():
    """25 partitions with min_splits=4 are already 25 splits: none is cut (Spark's semantics: the
    largest ranges are cut only until there are that many in total)."""
    context, _ = started(FakeAdmin({"a": 25}), parallelism=4, readers=(0, 1, 2, 3), min_splits=4)
    splits = [s for r in context.assigned.values() for s in r]
    assert sorted((s.partition, s.starting_offset, s.stopping_offset) for s in splits) == \
        [(p, 0, 100) for p in range(25)]


def test_min_splits_cuts_the_largest_ranges_until_the_total_is_reached():
    """Three partitions and min_splits=8: eight ranges in total, each partition covered exactly."""
    context, _ = started(FakeAdmin({"a": 3}), parallelism=2, readers=(0, 1), min_splits=8)
    splits = [s for r in context.assigned.values() for s in r]
    assert len(splits) >= 8 and len(splits) <= 9
    for p in range(3):
        mine = sorted((s.starting_offset, s.stopping_offset) for s in splits if s.partition == p)
        assert mine[0][0] == 0 and mine[-1][1] == 100
        assert all(a[1] == b[0] for a, b in zip(mine, mine[1:]))


def test_restored_extensions_are_planned_together():
    """A restored bounded read whose 10 partitions grew is cut into min_splits ranges in total."""
    admin = FakeAdmin({"a": 10})
    state = started(admin, min_splits=2)[1].snapshot_state(1)
    admin.latest = 130
    restored, _ = started(admin, state=state, restored_splits=[], min_splits=2)
    splits = restored.assigned[0]
    assert sorted((s.partition, s.starting_offset, s.stopping_offset) for s in splits) == \
        [(p, 100, 130) for p in range(10)]


def checkpointed_state(parallelism=1):
    """An enumerator's state after reading topic "a" (2 partitions) once, and its assigned splits."""
    context = FakeContext(parallelism)
    enumerator = make(FakeAdmin({"a": 2}), context)
    enumerator.start()
    context.readers.add(0)
    context.run_calls()
    assigned = [s.with_starting_offset(60) for s in context.assigned[0]]
    return enumerator.snapshot_state(1), assigned


def test_the_checkpoint_keeps_topic_ids_and_a_recreated_topic_fails_the_restore_by_default():
    from fastsource.errors import TopicRecreatedError

    state, assigned = checkpointed_state()
    assert state["version"] == 3 and state["topic_ids"] == {"a": "a-id"}
    admin = FakeAdmin({"a": 2})
    admin.ids["a"] = "new-id"
    context = FakeContext(1)
    enumerator = make(admin, context, state=state, restored_splits=assigned)
    enumerator.start()
    context.readers.add(0)
    with pytest.raises(TopicRecreatedError, match="'a' was deleted and created again since the "
                       "checkpoint: its id was a-id, it is now new-id") as info:
        context.run_calls()
    assert (info.value.old_id, info.value.new_id) == ("a-id", "new-id")
    assert not context.assigned


def test_a_recreated_topic_restarts_from_earliest_when_asked():
    state, assigned = checkpointed_state()
    admin = FakeAdmin({"a": 3}, earliest=0, latest=40)
    admin.ids["a"] = "new-id"
    context = FakeContext(1)
    enumerator = make(admin, context, state=state, restored_splits=assigned, on_topic_recreated="earliest")
    enumerator.start()
    context.readers.add(0)
    context.run_calls()
    got = sorted((s.partition, s.starting_offset, s.stopping_offset) for s in context.assigned[0])
    assert got == [(0, 0, 40), (1, 0, 40), (2, 0, 40)]
    assert enumerator.snapshot_state(2)["topic_ids"] == {"a": "new-id"}


def test_a_topic_recreated_while_reading_fails_the_read_and_old_states_still_load():
    from fastsource.errors import TopicRecreatedError

    state, assigned = checkpointed_state()
    del state["topic_ids"]
    state["version"] = 2
    admin = FakeAdmin({"a": 2})
    context = FakeContext(1)
    enumerator = make(admin, context, stopping=None, state=state, restored_splits=assigned)
    enumerator.start()
    context.readers.add(0)
    context.run_calls()
    assert sorted(s.starting_offset for s in context.assigned[0]) == [60, 60]
    admin.ids["a"] = "new-id"
    with pytest.raises(TopicRecreatedError, match="created again while reading: its id was a-id"):
        context.run_calls()
