"""What `fastsource.polars.pushdown_of` reads out of a Polars predicate: the bounds a scan may narrow
its read to. Anything it does not understand must bound nothing (the predicate is applied anyway)."""
from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from fastsource.polars import Pushdown, pushdown_of

UTC = dt.timezone.utc
T0 = dt.datetime(2025, 11, 26, 12, 0, 0, tzinfo=UTC)
T0_MS = int(T0.timestamp() * 1000)
T1 = T0 + dt.timedelta(hours=1)
T1_MS = T0_MS + 3_600_000
ts, offset, partition = pl.col("timestamp"), pl.col("offset"), pl.col("partition")


@pytest.mark.parametrize("predicate, low, high", [
    (ts >= T0, T0_MS, None),
    (ts > T0, T0_MS + 1, None),
    (ts < T1, None, T1_MS),
    (ts <= T1, None, T1_MS + 1),
    (ts == T0, T0_MS, T0_MS + 1),
    (pl.lit(T0) <= ts, T0_MS, None),
    (ts.is_between(T0, T1), T0_MS, T1_MS + 1),
    (ts.is_between(T0, T1, closed="left"), T0_MS, T1_MS),
    (ts.is_between(T0, T1, closed="none"), T0_MS + 1, T1_MS),
    ((ts >= T0) & (ts < T1) & (ts >= T0 + dt.timedelta(minutes=5)), T0_MS + 300_000, T1_MS),
])
def test_timestamp_comparisons_become_a_half_open_range_in_ms(predicate, low, high):
    got = pushdown_of(predicate)
    assert (got.timestamp_from, got.timestamp_until) == (low, high)


def test_sub_millisecond_bounds_round_to_the_millisecond_that_keeps_every_match():
    """A microsecond literal: `> t` keeps the next whole ms, `< t` keeps the ms that t falls in."""
    t = T0 + dt.timedelta(microseconds=500)
    assert pushdown_of(ts > t).timestamp_from == T0_MS + 1
    assert pushdown_of(ts >= t).timestamp_from == T0_MS + 1
    assert pushdown_of(ts < t).timestamp_until == T0_MS + 1
    assert pushdown_of(ts <= t).timestamp_until == T0_MS + 1


def test_offset_and_partition_bounds():
    got = pushdown_of((offset >= 10) & (offset < 20) & partition.is_in([1, 3]) & (partition < 3))
    assert (got.offset_from, got.offset_until) == (10, 20)
    assert [p for p in range(5) if got.reads_partition(p)] == [1]
    assert pushdown_of(offset.is_in([7, 3, 5])).offset_from == 3
    assert pushdown_of(offset.is_in([7, 3, 5])).offset_until == 8
    assert pushdown_of(partition == 2).reads_partition(2)
    assert not pushdown_of(partition == 2).reads_partition(1)


@pytest.mark.parametrize("predicate", [
    (ts >= T0) | (partition == 1),                  # a disjunction bounds nothing
    ~(ts < T0),                                      # nor a negation
    ts.dt.epoch("ms") > 5,                           # nor a function of the column
    offset != 5,
    pl.col("value") > 3,                             # nor another column
    ts >= dt.datetime(2025, 1, 1),                   # nor a time without a time zone
])
def test_what_the_scan_does_not_understand_bounds_nothing(predicate):
    assert pushdown_of(predicate) == Pushdown()


def test_understood_conjuncts_bound_even_beside_others():
    got = pushdown_of((pl.col("key") == b"x") & (ts >= T0) & ((offset < 3) | (offset > 9)))
    assert got == Pushdown(timestamp_from=T0_MS)


def test_a_timestamp_cast_to_a_finer_unit_bounds_like_the_column():
    """DuckDB hands its filters over as `timestamp.dt.cast_time_unit("us") >= <µs literal>`."""
    got = pushdown_of((ts.dt.cast_time_unit("us") >= T0) & (ts.dt.cast_time_unit("ns") < T1))
    assert (got.timestamp_from, got.timestamp_until) == (T0_MS, T1_MS)
