"""librdkafka's log lines reach `logging` collapsed: an outage's reconnect failures are one line."""
from __future__ import annotations

from fastsource.kafka.librdkafka_log import RepeatedLines


def test_a_repeated_line_is_shown_once_per_window_and_then_says_how_many_it_stood_for():
    lines = RepeatedLines(window_s=60)
    first = "FAIL: 127.0.0.1:20001/bootstrap: Connect failed: Connection refused (after 0ms in state CONNECT)"
    assert lines.admit(first) == first
    for ms in range(1, 500):
        assert lines.admit(first.replace("0ms", f"{ms}ms")) is None
    other = "FAIL: 127.0.0.1:20001/bootstrap: SASL authentication error"
    assert lines.admit(other) == other


def test_the_count_is_reported_when_the_window_has_passed():
    lines = RepeatedLines(window_s=0.0)
    assert lines.admit("Connect to 1 failed") == "Connect to 1 failed"
    lines.window_s = 3600
    assert lines.admit("Connect to 2 failed") is None
    lines.window_s = 0.0
    assert "(1 similar line(s) suppressed" in lines.admit("Connect to 3 failed")
