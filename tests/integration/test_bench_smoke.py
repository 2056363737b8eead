"""A small run of the benchmark suite, so that it keeps working (figures are not checked: CI machines
are noisy; bench/RESULTS.md holds measured ones)."""
import subprocess
import sys
from pathlib import Path

import pytest

CLI = str(Path(sys.executable).parent / "fastsource")
# Benchmarks measure fastsource, not the broker: the default Kafka version is enough.
pytestmark = pytest.mark.one_kafka_version


def test_benchmark_quick_run_reads_every_message(bootstrap, tmp_path):
    """`fastsource bench` is quick by default."""
    result = subprocess.run([CLI, "bench", "--bootstrap", bootstrap],
                            capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "c: fastsource" in result.stdout and "fastsource Json(schema)" in result.stdout
    assert "Peak RSS" in result.stdout
