"""Command-line offset specs."""
import pytest

from fastsource.errors import ConfigError
from fastsource.cli.specs import parse_time_ms, starting_offsets, stopping_offsets


def test_times_are_epoch_ms_or_iso_8601_in_utc():
    assert parse_time_ms("1700000000000") == 1_700_000_000_000
    assert parse_time_ms("2023-11-14T22:13:20") == 1_700_000_000_000
    assert parse_time_ms("2023-11-14T23:13:20+01:00") == 1_700_000_000_000
    assert parse_time_ms("soon") is None


@pytest.mark.parametrize("text, expected", [
    ("2026-12-03T17:18:59.5Z", 1_796_318_339_500),
    ("2026-12-03T17:18:59.5+00:00", 1_796_318_339_500),
    ("2026-12-03T17:18:59.123456789Z", 1_796_318_339_123),   # beyond microseconds: cut to ms
    ("2026-12-03 17:18:59,25", 1_796_318_339_250),
    ("2026-12-03T18:18:59.5+01", 1_796_318_339_500),
    ("2026-12-03T12:48:59.5-0430", 1_796_318_339_500),
    ("2026-12-03T17:18Z", 1_796_318_280_000),
    ("2026-12-03", 1_796_256_000_000),
    ("2023-11-14T22:13:20.001Z", 1_700_000_000_001),         # no float rounding down to .000
])
def test_iso_times_with_fractions_and_zones_parse_alike_on_every_python(text, expected):
    """`--from 2026-12-03T17:18:59.5Z` was refused on Python 3.9/3.10, whose fromisoformat takes
    neither "Z" nor a fraction of other than 3 or 6 digits: the parsing must not depend on it."""
    assert parse_time_ms(text) == expected


@pytest.mark.parametrize("text", ["2026-13-01T00:00Z", "2026-02-30", "2026-12-03T17:18:59.Z",
                                  "2026-12-03T25:00", "2026-12-03T17:18+24:00", "2026-W49-4",
                                  "20261203T171859Z", "2026-12-03T17"])
def test_malformed_or_impossible_times_are_not_times(text):
    assert parse_time_ms(text) is None


def test_starting_specs():
    assert starting_offsets("earliest", ["t"]).kind == "earliest"
    # committed never falls back silently: a reset is asked for explicitly (--reset)
    assert starting_offsets("committed", ["t"]).reset is None
    assert starting_offsets("committed", ["t"], reset="latest").reset == "latest"
    with pytest.raises(ConfigError, match="--reset applies to --from committed"):
        starting_offsets("earliest", ["t"], reset="latest")
    assert starting_offsets("0=5,1=7", ["t"]).offsets_map == {("t", 0): 5, ("t", 1): 7}
    # Partitions a spec does not name keep the option's default; out-of-range offsets never reset.
    assert starting_offsets("0=5", ["t"]).unlisted == "earliest"
    assert starting_offsets("0=5", ["t"]).reset is None
    assert stopping_offsets("0=5", ["t"]).unlisted == "latest"
    assert starting_offsets("a:0=5,b:2=1", ["a", "b"]).offsets_map == {("a", 0): 5, ("b", 2): 1}
    assert starting_offsets("2023-11-14T22:13:20Z", ["t"]).timestamp_ms == 1_700_000_000_000


def test_stopping_specs():
    assert stopping_offsets("follow", ["t"]) is None
    assert stopping_offsets("latest", ["t"]).kind == "latest"
    assert stopping_offsets("0=9", ["t"]).offsets_map == {("t", 0): 9}


def test_bad_specs_name_the_problem():
    with pytest.raises(ConfigError, match="bad --from"):
        starting_offsets("whenever", ["t"])
    with pytest.raises(ConfigError, match="topic:partition=offset"):
        starting_offsets("0=5", ["a", "b"])
    with pytest.raises(ConfigError, match="bad offset spec"):
        stopping_offsets("x=y", ["t"])
