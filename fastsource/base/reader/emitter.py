"""The record emitter (Flink's RecordEmitter): turns one fetch's raw records into the batch handed out,
and advances the states of the splits they came from."""
from __future__ import annotations

from typing import Mapping, Optional, Protocol

import pyarrow as pa

from fastsource.base.reader.split_reader import RecordsWithSplitIds
from fastsource.base.split import SplitState


class RecordEmitter(Protocol):
    """Runs on the thread that polls the reader. Records it could not decode and was told to divert
    go to `dead_letters` (batches), which the reader's owner drains."""

    dead_letters: list[pa.RecordBatch]

    def emit(self, records: RecordsWithSplitIds, states: Mapping[str, SplitState]) -> Optional[pa.RecordBatch]:
        """The batch to hand out (None: nothing to hand out), after advancing `states`."""
