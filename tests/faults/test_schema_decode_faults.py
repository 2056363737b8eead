"""No byte sequence crashes the compiled schema decoders: hypothesis properties over valid, mutated and
random records, and a bounded fuzz run of random payloads behind a valid header, in a subprocess so a
crash fails the test with its exit status instead of killing the test run."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

HERE = Path(__file__).parent
_spec = importlib.util.spec_from_file_location("test_poison_values", HERE / "test_poison_values.py")
_poison = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_poison)
run_python = _poison.run_python  # a fresh process; a crash fails the test with its exit status


@pytest.mark.timeout(300)
@pytest.mark.parametrize("format_name", ["avro", "avro-framed", "protobuf"])
def test_valid_mutated_and_random_records_never_crash_a_schema_decoder(format_name):
    result = run_python([str(HERE / "schema_decode_properties.py"), format_name, "100", "30000"], timeout=290)
    assert f"{format_name}: ok" in result.stdout
