"""Failover: a reader that fails is replaced, its splits resuming right after the last record handed
out. A part of `SourceStream` (a mixin using the stream's readers, positions and coordinator)."""
from __future__ import annotations

import logging

from fastsource.base.events import ReaderFailedEvent
from fastsource.errors import FastsourceError, ReaderFailedError, is_fatal

log = logging.getLogger(__name__)

MAX_REPLACEMENTS_IN_A_ROW = 3


class Failover:
    """Replaces failed readers of a `SourceStream`."""

    def _replace(self, reader_id: int, exc: Exception) -> None:
        """A reader failed. Fatal errors fail the stream; otherwise the reader is closed (batches in
        flight from it are dropped), its splits go back to the enumerator at their hand-over
        positions, and a new reader with the same id takes them: nothing lost or repeated, no
        rollback. A reader replaced more than MAX_REPLACEMENTS_IN_A_ROW times without handing out
        a record fails the stream."""
        if is_fatal(exc):
            if isinstance(exc, FastsourceError):
                raise exc
            raise FastsourceError(f"reader {reader_id} failed: {type(exc).__name__}: {exc}") from exc
        count = self._replaced_in_a_row.get(reader_id, 0) + 1
        if count > MAX_REPLACEMENTS_IN_A_ROW:
            raise ReaderFailedError(f"reader {reader_id} failed {count} times in a row without "
                                    f"handing out a record; last error: {exc}") from exc
        self._replaced_in_a_row[reader_id] = count
        log.warning("reader %d failed (%s: %s); replacing it (attempt %d of %d), its splits resume "
                    "after the last record handed out", reader_id, type(exc).__name__, exc, count,
                    MAX_REPLACEMENTS_IN_A_ROW)
        old = self.readers[reader_id]
        try:
            self._dead_letters.extend(old.dead_letters())
        finally:
            old.close()
        positions = {split_id: state.current_offset for split_id, state in self._positions.items()}
        self._coordinator.reader_failed(ReaderFailedEvent(reader_id, positions)).result(60)
        self._ended.discard(reader_id)
        self.readers[reader_id] = self._runtime.create_reader(reader_id, self._reader_spec, self._transport,
                                                              self._available)
        self.readers[reader_id].start()
