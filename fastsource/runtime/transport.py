"""The in-process transports (the protocol they implement is `fastsource.base.transport.Transport`).

A transport carries plain, picklable messages (`fastsource.base.events`) and nothing else: no
closure, future, queue or shared object. Each side binds a local delivery function; the transport
calls it with every message addressed to that side. `InProcessTransport` delivers by calling it at
once; `PicklingTransport` pickles and unpickles every message first, which proves that a transport
between processes (Ray actors) needs no change to the enumerator or the readers.
"""
from __future__ import annotations

import pickle
import threading
from typing import Any, Optional

from fastsource.base.transport import Deliver


class InProcessTransport:
    """Delivery by direct call in one process (the receivers' functions only enqueue)."""

    def __init__(self) -> None:
        self._coordinator: Optional[Deliver] = None
        self._readers: dict[int, Deliver] = {}
        self._lock = threading.Lock()

    def bind_coordinator(self, deliver: Deliver) -> None:
        self._coordinator = deliver

    def bind_reader(self, reader_id: int, deliver: Deliver) -> None:
        with self._lock:
            self._readers[reader_id] = deliver

    def unbind_reader(self, reader_id: int) -> None:
        with self._lock:
            self._readers.pop(reader_id, None)

    def _encode(self, event: Any) -> Any:
        return event

    def send_to_coordinator(self, event: Any) -> None:
        if self._coordinator is None:
            raise RuntimeError("no coordinator is bound to this transport")
        self._coordinator(self._encode(event))

    def send_to_reader(self, reader_id: int, event: Any) -> None:
        with self._lock:
            deliver = self._readers.get(reader_id)
        if deliver is not None:
            deliver(self._encode(event))


class PicklingTransport(InProcessTransport):
    """In-process delivery of a pickled-and-unpickled copy of every message: what crosses must be
    plain data, exactly as between processes."""

    def _encode(self, event: Any) -> Any:
        return pickle.loads(pickle.dumps(event))
