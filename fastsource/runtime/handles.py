"""Where readers live: the runtime creates them and the stream drives each through a handle.

The stream never touches a reader's internals: it calls the methods of `ReaderHandle`, and readers
reach the coordinator only through the runtime's `Transport`. The in-process runtime below is the
default; another runtime (Ray actors, processes) implements the same two protocols:

```
class MyRuntime:                                    # fastsource.runtime.handles.Runtime
    def create_transport(self) -> Transport: ...    # one per stream; carries only picklable events
    def create_reader(self, reader_id: int, spec: ReaderSpec, transport: Transport,
                      available: threading.Event) -> ReaderHandle: ...
    def close(self) -> None: ...                    # after every handle is closed

class MyHandle:                                     # fastsource.runtime.handles.ReaderHandle
    reader_id: int
    def start(self) -> None            # the reader registers with the coordinator (transport)
    def poll(self) -> ReaderOutput     # non-blocking; raises the reader's error (see is_fatal)
    def snapshot(self, checkpoint_id: int) -> dict
    def notify_checkpoint_complete(self, checkpoint_id, offsets, flush=False) -> bool
    def metrics(self) -> dict          # counters and, per split, paused / high_watermark
    def dead_letters(self) -> list[pyarrow.RecordBatch]
    def close(self) -> None            # idempotent; in-flight batches are dropped
```

A remote reader is built where it runs with `spec.build(reader_id, transport, available)` from a
pickled `ReaderSpec` (`fastsource.runtime.spec`), binds its side of the transport there, and its
handle forwards the calls above (e.g. as actor method calls); `poll` returns `ReaderOutput` (an Arrow
batch and its lineage). `available` is an event the stream waits on (at most 0.1 s at a time) when no handle had
anything: set it when a reader may have output. A handle whose reader died raises from `poll` an
error that `fastsource.errors.is_fatal` judges: non-fatal errors make the stream close the handle,
give the reader's splits back through the coordinator, and ask `create_reader` for a new reader with
the same id.
"""
from __future__ import annotations

import dataclasses
import threading
from typing import Any, Callable, Optional, Protocol

import pyarrow as pa

from fastsource.base.reader.source_reader import ReaderOutput, SourceReaderBase
from fastsource.base.transport import Transport
from fastsource.runtime.spec import ReaderSpec
from fastsource.runtime.transport import InProcessTransport


class ReaderHandle(Protocol):
    """How the stream drives one reader, wherever it runs (see the module docstring)."""

    reader_id: int

    def start(self) -> None:
        """The reader sends its ReaderRegistrationEvent (it then receives splits)."""

    def poll(self) -> ReaderOutput:
        """Without blocking: the next batch with its lineage, the splits taken on and finished, or
        NOTHING_AVAILABLE / END_OF_INPUT. Raises the error that stopped the reader."""

    def snapshot(self, checkpoint_id: int) -> dict[str, Any]:
        """The reader's own view of its splits (JSON-ready; stored with the checkpoint)."""

    def notify_checkpoint_complete(self, checkpoint_id: int, offsets: list[tuple[str, int, int]],
                                   flush: bool = False) -> bool:
        """Commit `(topic, partition, next_offset)` to the consumer group on the thread that owns
        the reader's consumer; with `flush`, return once the group has them. False when the reader
        has no consumer (the stream then asks the next reader)."""

    def metrics(self) -> dict[str, Any]:
        """`reader_id`, `records`, `bytes`, `fetch_time_s`, `emit_time_s`, `commits_succeeded`,
        `commits_failed`, `committed_offsets`, `finished_splits`, and `splits`: per split it holds,
        `topic`, `partition`, `starting_offset`, `paused`, `high_watermark` (None: unknown)."""

    def dead_letters(self) -> list[pa.RecordBatch]:
        """Dead-letter batches since the last call (raw columns plus `error`)."""

    def close(self) -> None:
        """Stop the reader and release its consumer; idempotent. Output not yet polled is dropped."""


class Runtime(Protocol):
    """Creates the transport and the readers of a stream (see the module docstring)."""

    def create_transport(self) -> Transport:
        """A new transport for one stream (its coordinator binds to it)."""

    def create_reader(self, reader_id: int, spec: ReaderSpec, transport: Transport,
                      available: threading.Event) -> ReaderHandle:
        """A reader with this id, bound to `transport`, not started. Called again with the same id
        to replace a reader that failed."""

    def close(self) -> None:
        """Release what the runtime holds, once the stream closed every handle."""


class InProcessReaderHandle:
    """A reader in this process, driven on the stream's thread."""

    def __init__(self, reader: SourceReaderBase) -> None:
        self.reader_id = reader.reader_id
        self._reader = reader
        self._closed = False

    def start(self) -> None:
        self._reader.start()

    def poll(self) -> ReaderOutput:
        return self._reader.poll_next()

    def snapshot(self, checkpoint_id: int) -> dict[str, Any]:
        return self._reader.snapshot_state(checkpoint_id)

    def notify_checkpoint_complete(self, checkpoint_id: int, offsets: list[tuple[str, int, int]],
                                   flush: bool = False) -> bool:
        return self._reader.notify_checkpoint_complete(checkpoint_id, offsets, flush)

    def metrics(self) -> dict[str, Any]:
        return self._reader.metrics()

    def dead_letters(self) -> list[pa.RecordBatch]:
        return self._reader.take_dead_letters()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._reader.close()


class InProcessRuntime:
    """Readers in this process, each with its fetcher thread, joined to the coordinator by
    `transport_factory()` (InProcessTransport; PicklingTransport proves the seam)."""

    def __init__(self, transport_factory: Callable[[], Transport] = InProcessTransport,
                 split_reader_factory: Optional[Callable[[ReaderSpec], Any]] = None) -> None:
        self._transport_factory = transport_factory
        self._split_reader_factory = split_reader_factory

    def create_transport(self) -> Transport:
        return self._transport_factory()

    def create_reader(self, reader_id: int, spec: ReaderSpec, transport: Transport,
                      available: threading.Event) -> ReaderHandle:
        if self._split_reader_factory is not None and spec.split_reader_factory is None:
            spec = dataclasses.replace(spec, split_reader_factory=self._split_reader_factory)
        return InProcessReaderHandle(spec.build(reader_id, transport, available))

    def close(self) -> None:
        """Nothing to release: each handle closed its reader."""
