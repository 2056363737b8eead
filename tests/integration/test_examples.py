"""Every script in examples/ runs against the real broker."""
import subprocess
import sys
from pathlib import Path

import pytest

# The examples exercise read paths that the rest of tests/integration runs on every Kafka version;
# running them (a Ray one among them) once keeps the second version's CI time down.
pytestmark = pytest.mark.one_kafka_version

EXAMPLES = sorted(p for p in (Path(__file__).resolve().parents[2] / "examples").glob("*.py")
                  if not p.name.startswith("_"))


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs(script, bootstrap, tmp_path):
    done = subprocess.run([sys.executable, str(script), bootstrap], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path, env={"PYTHONPATH": str(script.parent),
                                                          "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert done.stdout.strip()
