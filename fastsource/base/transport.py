"""The transport protocol: the only link between the coordinator and the readers.

A transport carries plain, picklable messages (`fastsource.base.events`) and nothing else. The runtimes
implement it (`fastsource.runtime.transport` in one process, `fastsource.ray.runtime` between actors);
the reader base and the coordinator see only this protocol.
"""
from __future__ import annotations

from typing import Any, Callable, Protocol

Deliver = Callable[[Any], None]


class Transport(Protocol):
    """What the coordinator and the readers use to reach each other.

    `bind_coordinator(deliver)` / `bind_reader(reader_id, deliver)`: the receiving side registers the
    function that queues a message for it (it must not block). `send_to_coordinator(event)` and
    `send_to_reader(reader_id, event)` deliver one message; messages from one sender to one receiver
    arrive in the order sent. A message to a reader that is not bound is dropped (the reader is gone:
    the coordinator learns of it and gives its splits back). `unbind_reader` detaches a reader.
    """

    def bind_coordinator(self, deliver: Deliver) -> None: ...

    def bind_reader(self, reader_id: int, deliver: Deliver) -> None: ...

    def unbind_reader(self, reader_id: int) -> None: ...

    def send_to_coordinator(self, event: Any) -> None: ...

    def send_to_reader(self, reader_id: int, event: Any) -> None: ...
