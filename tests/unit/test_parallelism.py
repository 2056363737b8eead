"""The default number of readers: two per CPU core this process may use, at most 8."""
import os

import pytest

from fastsource.source import default_parallelism


@pytest.mark.parametrize("cores, readers", [(1, 2), (2, 4), (3, 6), (4, 8), (64, 8)])
def test_two_readers_per_usable_core_at_most_eight(monkeypatch, cores, readers):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    assert default_parallelism() == readers
