"""Range planning: contiguous, non-empty ranges that cover each partition exactly, cut as documented."""
import pytest

from fastsource.kafka.enumerator.ranges import OffsetRange, plan_ranges
from fastsource.errors import ConfigError


def covers_exactly(ranges, partitions):
    """Per partition, the ranges in order are contiguous and span exactly the partition's range."""
    for p in partitions:
        mine = sorted(r for r in ranges if (r.topic, r.partition) == (p.topic, p.partition))
        assert mine[0].start == p.start and mine[-1].stop == p.stop
        for a, b in zip(mine, mine[1:]):
            assert a.stop == b.start
        if p.size > 0:
            assert all(r.size > 0 for r in mine)


def test_without_options_each_partition_is_one_range():
    parts = [OffsetRange("t", 0, 0, 100), OffsetRange("t", 1, 5, 5)]
    assert plan_ranges(parts) == parts


def test_max_records_cuts_into_equal_pieces_of_at_most_n():
    part = OffsetRange("t", 0, 10, 110)
    ranges = plan_ranges([part], max_records_per_split=30)
    assert [r.size for r in ranges] == [25, 25, 25, 25]
    covers_exactly(ranges, [part])


def test_min_splits_cuts_the_large_partition_in_proportion_and_leaves_small_ones():
    big, small = OffsetRange("t", 0, 0, 900), OffsetRange("t", 1, 0, 100)
    ranges = plan_ranges([big, small], min_splits=10)
    assert len(ranges) >= 10
    assert [r for r in ranges if r.partition == 1] == [small]
    covers_exactly(ranges, [big, small])


def test_one_partition_spread_over_four_readers():
    part = OffsetRange("t", 0, 0, 5_000_000)
    ranges = plan_ranges([part], min_splits=4)
    assert [r.size for r in ranges] == [1_250_000] * 4
    covers_exactly(ranges, [part])


def test_min_splits_never_makes_empty_ranges():
    part = OffsetRange("t", 0, 7, 10)
    ranges = plan_ranges([part], min_splits=8)
    assert [r.size for r in ranges] == [1, 1, 1]
    covers_exactly(ranges, [part])


def test_empty_partition_stays_one_range_even_with_options():
    part = OffsetRange("t", 0, 42, 42)
    assert plan_ranges([part], max_records_per_split=1, min_splits=3) == [part]


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "3"])
def test_bad_options_are_config_errors_naming_the_argument(bad):
    with pytest.raises(ConfigError, match="max_records_per_split"):
        plan_ranges([OffsetRange("t", 0, 0, 1)], max_records_per_split=bad)
    with pytest.raises(ConfigError, match="min_splits"):
        plan_ranges([OffsetRange("t", 0, 0, 1)], min_splits=bad)
