"""Build fastsource's API reference from its docstrings with pdoc, treating every warning as an error.

    python docs/build_api.py [OUTPUT_DIR]      # default: docs/_build/api (open fastsource.html)

The test suite runs it (tests/integration/test_docs.py), so a docstring pdoc cannot render, or an
annotation it cannot resolve, fails the build instead of rotting quietly.
"""
from __future__ import annotations

import sys
import warnings
from pathlib import Path

# The public API: the package (its `__all__`, with `fastsource.formats`) and the optional
# integrations. The command line, the local broker and the benchmark harness are tools, not API.
MODULES = ["fastsource", "fastsource.polars", "fastsource.ray", "fastsource.runtime.handles"]


def build(output: Path) -> None:
    import pdoc
    import pdoc.render

    pdoc.render.configure(docformat="markdown", show_source=False,
                          footer_text="fastsource: Apache Kafka into Apache Arrow")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pdoc.pdoc(*MODULES, output_directory=output)


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "_build" / "api"
    build(target)
    print(f"API reference in {target}/fastsource.html")
