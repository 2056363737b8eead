"""Splits, their state, and the versioned serialized form."""
import pytest

from fastsource.errors import SerializationError
from fastsource.split import (KafkaPartitionSplit, KafkaPartitionSplitState, deserialize_split,
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
