"""One local Ray (2 CPUs) per test module. Ray is optional: without it these tests skip."""
from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="module")
def ray_local(tmp_path_factory):
    """A local Ray started from an empty directory: Ray puts the driver's working directory on its
    workers' sys.path, and the source tree's `fastsource/` (without the compiled core) would then
    shadow the installed package."""
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'fastsource[ray]')")
    cwd = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("ray-cwd"))
    try:
        ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    finally:
        os.chdir(cwd)
    yield ray
    ray.shutdown()
