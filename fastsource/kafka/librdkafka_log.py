"""librdkafka's own log lines (connection failures, ...), which the compiled consumer hands over after
each fetch, go to the `fastsource.librdkafka` logger instead of stderr, repeated lines collapsed."""
from __future__ import annotations

import logging
import re
import threading
import time
from typing import Optional

librdkafka_log = logging.getLogger("fastsource.librdkafka")


class RepeatedLines:
    """Collapses repeated librdkafka log lines across every consumer of the process: a line (its
    numbers aside) is shown once per `window_s`, and the next showing says how many it stood for.
    An outage makes every consumer log each failed reconnect; that is one line, not hundreds."""

    def __init__(self, window_s: float = 60.0) -> None:
        self.window_s = window_s
        self._seen: dict[str, list] = {}
        self._lock = threading.Lock()

    def admit(self, text: str) -> Optional[str]:
        """`text` (with the count of lines suppressed since it was last shown) or None to drop it."""
        key = re.sub(r"\d+", "#", text)
        now = time.monotonic()
        with self._lock:
            entry = self._seen.get(key)
            if entry is not None and now - entry[0] < self.window_s:
                entry[1] += 1
                return None
            if len(self._seen) > 1000:
                self._seen = {k: v for k, v in self._seen.items() if now - v[0] < self.window_s}
            self._seen[key] = [now, 0]
        if entry is not None and entry[1]:
            return f"{text} ({entry[1]} similar line(s) suppressed in the last {now - entry[0]:.0f} s)"
        return text


repeated_lines = RepeatedLines()


def python_level(level: int) -> int:
    """The `logging` level of a librdkafka (syslog) level."""
    return (logging.CRITICAL if level <= 2 else logging.ERROR if level == 3 else
            logging.WARNING if level == 4 else logging.INFO if level <= 6 else logging.DEBUG)


def publish_log_lines(lines: list[tuple[int, str]], dropped: int) -> None:
    """Log a consumer's buffered `(syslog level, text)` lines; `dropped` lines did not fit its buffer.
    Lines up to INFO are collapsed by `repeated_lines`; debug lines (asked for with `debug=`) are not."""
    for level, text in lines:
        shown: Optional[str] = repeated_lines.admit(text) if level <= 6 else text
        if shown is not None:
            librdkafka_log.log(python_level(level), "%s", shown)
    if dropped:
        shown = repeated_lines.admit(f"{dropped} more librdkafka log lines dropped")
        if shown is not None:
            librdkafka_log.warning("%s", shown)
