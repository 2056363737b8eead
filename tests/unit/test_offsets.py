"""Explicit offsets never fall back silently: out-of-range offsets, unknown partitions and unlisted
partitions are errors naming them, unless the caller chose where they go."""
from __future__ import annotations

import logging

import pytest

from fastsource.kafka.enumerator.offsets import OffsetsInitializer
from fastsource.errors import ConfigError, OffsetOutOfRangeError
from fastsource.kafka.split import KafkaPartitionSplit

PARTITIONS = [("t", 0), ("t", 1), ("t", 2)]


class RangeAdmin:
    """Every partition holds offsets [40, 100)."""

    def list_offsets(self, partitions, query):
        return {tp: {"earliest": 40, "latest": 100}[query] for tp in partitions}


def resolve(initializer: OffsetsInitializer, stopping: bool = False) -> dict:
    return initializer.resolve(RangeAdmin(), PARTITIONS, stopping=stopping)


ALL = {("t", 0): 50, ("t", 1): 60, ("t", 2): 70}


def test_listed_offsets_in_range_are_taken():
    assert resolve(OffsetsInitializer.offsets(ALL)) == ALL


@pytest.mark.parametrize("offset", [0, 39, 101, 999999])
def test_an_offset_outside_the_partition_is_an_error_naming_it_and_the_range(offset):
    with pytest.raises(OffsetOutOfRangeError) as info:
        resolve(OffsetsInitializer.offsets({**ALL, ("t", 1): offset}))
    message = str(info.value)
    assert f"offset {offset} of t[1]" in message and "starts at offset 40 and ends at 100" in message
    assert (info.value.topic, info.value.partition, info.value.offset) == ("t", 1, offset)


@pytest.mark.parametrize("reset, expected", [("earliest", 40), ("latest", 100)])
def test_a_chosen_reset_moves_an_out_of_range_offset(reset, expected):
    assert resolve(OffsetsInitializer.offsets({**ALL, ("t", 1): 5}, reset=reset))[("t", 1)] == expected


def test_an_offset_for_a_partition_that_does_not_exist_is_an_error():
    with pytest.raises(ConfigError, match=r"t\[9\] \(offset 5; partitions read of t: 0, 1, 2\)"):
        resolve(OffsetsInitializer.offsets({**ALL, ("t", 9): 5}, unlisted="earliest"))
    with pytest.raises(ConfigError, match="topic other is not read"):
        resolve(OffsetsInitializer.offsets({**ALL, ("other", 0): 5}))


def test_unlisted_partitions_are_an_error_unless_chosen(caplog):
    with pytest.raises(ConfigError, match=r"no starting offset was given for t\[1\], t\[2\]"):
        resolve(OffsetsInitializer.offsets({("t", 0): 50}))
    with caplog.at_level(logging.WARNING):
        stops = resolve(OffsetsInitializer.offsets({("t", 0): 50}, unlisted="latest"), stopping=True)
    assert stops == {("t", 0): 50, ("t", 1): 100, ("t", 2): 100}
    assert any("t[1], t[2]" in r.getMessage() and "stop at latest" in r.getMessage()
               for r in caplog.records)


def test_a_listed_stopping_offset_past_the_end_is_waited_for():
    assert resolve(OffsetsInitializer.offsets({**ALL, ("t", 0): 500}), stopping=True)[("t", 0)] == 500


def test_a_split_stopping_before_it_starts_is_an_error():
    with pytest.raises(ConfigError, match=r"stopping offset 3 of t\[0\] is before its starting offset 5"):
        KafkaPartitionSplit("t", 0, 5, 3)
    assert KafkaPartitionSplit("t", 0, 5, 5).stopping_offset == 5


def test_reset_and_unlisted_are_checked():
    with pytest.raises(ConfigError, match="unlisted"):
        OffsetsInitializer.offsets(ALL, unlisted="oldest")
