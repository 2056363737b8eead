"""Splits, their state, and the versioned serialized form."""
import pytest

from fastsource.errors import SerializationError
from fastsource.kafka.split import (KafkaPartitionSplit, KafkaPartitionSplitState, deserialize_split,
                              serialize_split)


def test_split_id_is_topic_dash_partition():
    assert KafkaPartitionSplit("events", 3, 10, 20).split_id == "events-3"


def test_serialization_round_trip_bounded_and_unbounded():
    for split in (KafkaPartitionSplit("a.b-c", 0, 5, 9), KafkaPartitionSplit("x", 7, 0, None)):
        assert deserialize_split(serialize_split(split)) == split


def test_unknown_serializer_version_is_rejected():
    data = serialize_split(KafkaPartitionSplit("t", 0, 1, 2))
    data["version"] = 99
    with pytest.raises(SerializationError, match="version 99"):
        deserialize_split(data)


def test_malformed_serialized_split_is_rejected():
    with pytest.raises(SerializationError):
        deserialize_split({"version": 1, "topic": "t"})


def test_state_advances_and_resumes_after_emitted_records():
    state = KafkaPartitionSplitState(KafkaPartitionSplit("t", 1, 100, 200))
    assert state.current_offset == 100
    state.advance(next_offset=150, max_timestamp=5000, records=50, nbytes=500)
    state.advance(next_offset=160, max_timestamp=4000, records=10, nbytes=100)
    assert state.max_timestamp == 5000
    assert (state.records, state.bytes) == (60, 600)
    assert state.to_split() == KafkaPartitionSplit("t", 1, 160, 200)


def test_range_split_id_is_stored_and_kept_as_the_split_advances():
    split = KafkaPartitionSplit.range_split("events", 3, 100, 200)
    assert split.split_id == "events-3@100-200" and split.is_range
    assert split.with_starting_offset(150).split_id == "events-3@100-200"
    assert not KafkaPartitionSplit("events", 3, 100, 200).is_range
    assert deserialize_split(serialize_split(split.with_starting_offset(150))) == \
        split.with_starting_offset(150)


def test_version_1_documents_are_still_read():
    """A split written by the first serializer (no id field) reads as a whole-partition split."""
    v1 = {"version": 1, "topic": "events", "partition": 2, "starting_offset": 7, "stopping_offset": None}
    split = deserialize_split(v1)
    assert split == KafkaPartitionSplit("events", 2, 7, None)
    assert split.split_id == "events-2"
    assert serialize_split(split)["version"] == 2
