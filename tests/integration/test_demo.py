"""The README's first command: `fastsource demo` on its embedded default (a local broker of its own,
sample events, a read into Arrow, a summary) runs end to end and stops its broker."""
from __future__ import annotations

import socket

from fastsource.cli.main import main


def test_the_demo_reads_every_event_from_its_own_broker_and_stops_it(free_port, capsys):
    assert main(["demo", "--messages", "20000", "--port", str(free_port)]) == 0
    out = capsys.readouterr().out
    assert "rows: 20,000" in out
    assert "fastsource-demo[0] @0" in out  # the preview starts at the first offset of partition 0
    assert "local broker stopped" in out
    with socket.socket() as probe:  # nothing listens on the demo's port any more
        assert probe.connect_ex(("127.0.0.1", free_port)) != 0
