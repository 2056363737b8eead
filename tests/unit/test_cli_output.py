"""The command line's console encoding (JSON lines, lossless for bytes) and its output checks, which
run before anything is read."""
import argparse
import datetime as dt
import io
import json

import pyarrow as pa
import pytest

from fastsource.cli.console import print_table, write_jsonl
from fastsource.cli.read import dataset_state_dir, plan_output
from fastsource.errors import ConfigError


def batch(keys, values):
    n = len(values)
    return pa.record_batch({
        "topic": pa.array(["t"] * n).dictionary_encode(), "partition": pa.array([0] * n, pa.int32()),
        "offset": pa.array(range(n), pa.int64()),
        "timestamp": pa.array([dt.datetime(2025, 1, 1, 0, 0, 0, 123000, tzinfo=dt.timezone.utc)] * n,
                              pa.timestamp("ms", tz="UTC")),
        "key": pa.array(keys, pa.binary()), "value": pa.array(values, pa.binary())})


def test_json_lines_keep_bytes_lossless_and_text_readable():
    out = io.StringIO()
    write_jsonl(batch([b"k", None, b"\x80"], [b"caf\xc3\xa9", None, b"\x00\xff"]), out)
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert rows[0] == {"topic": "t", "partition": 0, "offset": 0, "timestamp": 1735689600123,
                       "key": "k", "value": "café"}
    assert rows[1]["key"] is None and rows[1]["value"] is None
    assert rows[2]["key_base64"] == "gA==" and rows[2]["value_base64"] == "AP8=" and "value" not in rows[2]


def test_table_aligns_columns_and_marks_missing_values():
    out = io.StringIO()
    print_table([{"topic": "a", "n": 5}, {"topic": "long-name", "n": None}], ["topic", "n"], out, right=["n"])
    assert out.getvalue().splitlines() == ["topic      n", "a          5", "long-name  -"]


def args(**given):
    defaults = dict(output=None, format=None, overwrite=False, to="latest")
    return argparse.Namespace(**{**defaults, **given})


@pytest.mark.parametrize("given", ["beginning", "end", "stored", "-10", "5", "s@1700000000000"])
def test_kcat_offsets_given_as_output_are_refused(given):
    with pytest.raises(ConfigError, match="--from"):
        plan_output(args(output=given))


def test_output_kinds_and_the_dataset_state_beside_it(tmp_path):
    assert plan_output(args()).kind == "console"
    assert plan_output(args(output=str(tmp_path / "x.parquet"))).kind == "parquet"
    assert plan_output(args(output=str(tmp_path / "x.feather"))).kind == "arrow"
    dataset = plan_output(args(output=str(tmp_path / "ds")))
    assert dataset.kind == "dataset" and dataset.state_dir == tmp_path / ".ds.fastsource"
    assert dataset_state_dir(tmp_path / "ds").parent == tmp_path
    with pytest.raises(ConfigError, match="needs an output path"):
        plan_output(args(format="parquet"))
    with pytest.raises(ConfigError, match="--to follow never ends"):
        plan_output(args(output=str(tmp_path / "x.parquet"), to="follow"))
