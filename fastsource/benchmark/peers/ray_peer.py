"""Ray Data peer: `ray.data.read_kafka` on a local Ray (2 CPUs), materialized, in its own process.

Usage: python ray_peer.py BOOTSTRAP TOPIC (run as a script by the suite; prints readers.py's result line).
Blocks are kept in Ray's object store as they come (what `Dataset.materialize()` does), so that the
arrival of the first block can be timed.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import readers  # noqa: E402

# The local Ray of the benchmark binds and connects on loopback only (by default Ray swaps 127.0.0.1
# for the host's own address); read when ray is imported.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


def main() -> None:
    """Read the whole topic into Ray's object store; report counts and times."""
    bootstrap, topic = sys.argv[1], sys.argv[2]
    import ray

    connect = time.perf_counter()
    ray.init(num_cpus=2)
    try:
        dataset = ray.data.read_kafka(topic, bootstrap_servers=bootstrap)
        blocks = []
        rows = nbytes = 0
        first = None
        for bundle in dataset.iter_internal_ref_bundles():
            first = first or time.perf_counter()
            rows += bundle.num_rows() or 0
            nbytes += bundle.size_bytes()
            blocks.append(bundle)
        readers.report(rows, nbytes, connect, first)
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
