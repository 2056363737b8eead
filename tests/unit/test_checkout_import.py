"""`import fastsource` inside a source checkout whose compiled core is not built (the current
directory shadows the installed package) says exactly where and what to run."""
import shutil
import subprocess
import sys
from pathlib import Path

import fastsource

SOURCE = Path(fastsource.__file__).resolve().parent


def test_a_checkout_without_its_core_names_itself_and_the_command_that_builds_it(tmp_path):
    checkout = tmp_path / "checkout"
    shutil.copytree(SOURCE, checkout / "fastsource",
                    ignore=shutil.ignore_patterns("*.so", "__pycache__", "*.c", "*.cpp"))
    (checkout / "pyproject.toml").write_text("[project]\nname = 'fastsource'\n")
    # As after `pip install .` (not -e): no editable finder that would lend the checkout a core.
    code = ("import sys; sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f)]; "
            "import fastsource")
    done = subprocess.run([sys.executable, "-c", code], cwd=checkout,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    message = done.stderr.strip().splitlines()[-1]
    assert f"source checkout {checkout}" in message and "not built" in message
    assert f"`pip install -e .` in {checkout}" in message
