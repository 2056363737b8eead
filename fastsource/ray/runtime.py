"""`RayRuntime`: a stream's readers as Ray actors; the coordinator and the enumerator stay in the driver.

    with source.open(parallelism=4, checkpoint_dir="chk", runtime=RayRuntime()) as stream:
        for batch in stream: ...

Each reader runs in its own actor, built there from the stream's `ReaderSpec` with its own consumer.
The driver's handle keeps one `poll` call in flight per actor, so an actor fetches and decodes the next
batch while the driver works on the last; batches come back through Ray's object store as Arrow
buffers. Messages between the coordinator and an actor are the runtime's plain events: to the actor
as `deliver` calls (Ray runs one caller's calls to an actor in order), from it in an outbox that rides
back with every answer, and so do the records a format diverted to dead letters. A killed actor makes its handle's `poll` raise `ReaderActorDiedError`; the
stream then replaces the reader (a new actor) and its splits resume right after the last record the
stream handed out (positions are kept in the driver), so no record is lost or repeated.
"""
from __future__ import annotations

import threading
from typing import Any, Optional

import pyarrow as pa
import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

from fastsource.base.reader.source_reader import NOTHING, InputStatus, ReaderOutput
from fastsource.errors import FS_READER_DIED, error_from_code
from fastsource.runtime.handles import InProcessReaderHandle, ReaderHandle
from fastsource.runtime.spec import ReaderSpec
from fastsource.base.transport import Deliver

CALL_TIMEOUT_S = 60.0


class _Outbox:
    """The reader's side of the transport inside its actor: messages to the coordinator wait in an
    outbox that the next answer carries back; messages from it are delivered by `deliver`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._outgoing: list[Any] = []
        self._reader: Optional[Deliver] = None

    def bind_coordinator(self, deliver: Deliver) -> None:
        raise RuntimeError("the coordinator runs in the driver, not in a reader's actor")

    def bind_reader(self, reader_id: int, deliver: Deliver) -> None:
        self._reader = deliver

    def unbind_reader(self, reader_id: int) -> None:
        self._reader = None

    def send_to_coordinator(self, event: Any) -> None:
        with self._lock:
            self._outgoing.append(event)

    def send_to_reader(self, reader_id: int, event: Any) -> None:
        if self._reader is not None:
            self._reader(event)

    def drain(self) -> list[Any]:
        with self._lock:
            events, self._outgoing = self._outgoing, []
        return events


class ReaderActor:
    """One reader inside a Ray actor (methods run one at a time, on one thread, as a reader needs);
    every answer is `(result, events for the coordinator)`."""

    def __init__(self, reader_id: int, spec: ReaderSpec) -> None:
        self._outbox = _Outbox()
        self._available = threading.Event()
        self._handle = InProcessReaderHandle(spec.build(reader_id, self._outbox, self._available))

    def start(self) -> tuple[None, list[Any]]:
        self._handle.start()
        return None, self._outbox.drain()

    def deliver(self, events: list[Any]) -> None:
        for event in events:
            self._outbox.send_to_reader(0, event)

    def poll(self, wait_s: float) -> tuple[tuple[ReaderOutput, list[pa.RecordBatch]], list[Any]]:
        """The reader's next output and the records diverted to dead letters while producing it,
        waiting up to `wait_s` for an output when it has none."""
        self._available.clear()
        output = self._handle.poll()
        if output.status is InputStatus.NOTHING_AVAILABLE:
            self._available.wait(wait_s)
            output = self._handle.poll()
        return (output, self._handle.dead_letters()), self._outbox.drain()

    def snapshot(self, checkpoint_id: int) -> tuple[dict[str, Any], list[Any]]:
        return self._handle.snapshot(checkpoint_id), self._outbox.drain()

    def notify_checkpoint_complete(self, checkpoint_id: int, offsets: list[tuple[str, int, int]],
                                   flush: bool) -> tuple[bool, list[Any]]:
        return self._handle.notify_checkpoint_complete(checkpoint_id, offsets, flush), self._outbox.drain()

    def metrics(self) -> tuple[dict[str, Any], list[Any]]:
        return self._handle.metrics(), self._outbox.drain()

    def close(self) -> None:
        self._handle.close()


class RayTransport:
    """The driver's side: the coordinator is called directly, a reader through its actor."""

    def __init__(self) -> None:
        self._coordinator: Optional[Deliver] = None
        self._actors: dict[int, Any] = {}
        self._lock = threading.Lock()

    def bind_coordinator(self, deliver: Deliver) -> None:
        self._coordinator = deliver

    def bind_reader(self, reader_id: int, deliver: Deliver) -> None:
        raise RuntimeError("readers of a RayRuntime run in actors: use attach()")

    def attach(self, reader_id: int, actor: Any) -> None:
        with self._lock:
            self._actors[reader_id] = actor

    def unbind_reader(self, reader_id: int, actor: Any = None) -> None:
        """Detach reader `reader_id` (only if it is still `actor`, when given)."""
        with self._lock:
            if actor is None or self._actors.get(reader_id) is actor:
                self._actors.pop(reader_id, None)

    def send_to_coordinator(self, event: Any) -> None:
        if self._coordinator is None:
            raise RuntimeError("no coordinator is bound to this transport")
        self._coordinator(event)

    def send_to_reader(self, reader_id: int, event: Any) -> None:
        with self._lock:
            actor = self._actors.get(reader_id)
        if actor is not None:
            actor.deliver.remote([event])  # a dead actor drops it: its splits come back on failover


class RayReaderHandle:
    """The driver's handle on one reader actor (see the module docstring)."""

    def __init__(self, reader_id: int, actor: Any, transport: RayTransport,
                 available: threading.Event, poll_wait_s: float) -> None:
        self.reader_id = reader_id
        self._actor = actor
        self._transport = transport
        self._available = available
        self._poll_wait_s = poll_wait_s
        self._pending: Optional[Any] = None
        self._dead_letters: list[pa.RecordBatch] = []
        self._ended = False
        self._closed = False

    def _answer(self, ref: Any, timeout: Optional[float] = CALL_TIMEOUT_S) -> Any:
        """The result of an actor call, after its events went to the coordinator. A dead actor raises
        ReaderActorDiedError; the reader's own error is re-raised as it was (the stream judges it)."""
        try:
            result, events = ray.get(ref, timeout=timeout)
        except RayActorError as exc:
            raise error_from_code(FS_READER_DIED, f"the actor of reader {self.reader_id} died: {exc}") from exc
        except RayTaskError as exc:
            cause = exc.cause if isinstance(exc.cause, Exception) else exc
            raise cause from exc
        except GetTimeoutError as exc:
            raise error_from_code(FS_READER_DIED, f"the actor of reader {self.reader_id} did not answer "
                                  f"within {timeout:g} s") from exc
        for event in events:
            self._transport.send_to_coordinator(event)
        return result

    def _request_poll(self) -> None:
        self._pending = self._actor.poll.remote(self._poll_wait_s)
        self._pending.future().add_done_callback(lambda _: self._available.set())

    def start(self) -> None:
        self._answer(self._actor.start.remote())
        self._request_poll()

    def poll(self) -> ReaderOutput:
        if self._ended or self._pending is None:
            return NOTHING
        ready, _ = ray.wait([self._pending], timeout=0)
        if not ready:
            return NOTHING
        ref, self._pending = self._pending, None
        output, dead_letters = self._answer(ref)
        self._dead_letters.extend(dead_letters)
        if output.status is InputStatus.END_OF_INPUT:
            self._ended = True
        else:
            self._request_poll()
        return output

    def snapshot(self, checkpoint_id: int) -> dict[str, Any]:
        return self._answer(self._actor.snapshot.remote(checkpoint_id))

    def notify_checkpoint_complete(self, checkpoint_id: int, offsets: list[tuple[str, int, int]],
                                   flush: bool = False) -> bool:
        return self._answer(self._actor.notify_checkpoint_complete.remote(checkpoint_id, offsets, flush))

    def metrics(self) -> dict[str, Any]:
        return self._answer(self._actor.metrics.remote())

    def dead_letters(self) -> list[pa.RecordBatch]:
        """Records diverted from the outputs polled so far (they come with each poll answer, so a
        dead actor loses none: what it had not handed out is read again by its replacement)."""
        batches, self._dead_letters = self._dead_letters, []
        return batches

    def close(self) -> None:
        """Close the reader and end its actor; in-flight batches are dropped. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._transport.unbind_reader(self.reader_id, self._actor)
        try:
            ray.get(self._actor.close.remote(), timeout=CALL_TIMEOUT_S)
        except (RayActorError, RayTaskError, GetTimeoutError):
            pass  # dead already, or failing: it is killed below either way
        ray.kill(self._actor)

    @property
    def actor(self) -> Any:
        """The Ray actor handle (e.g. for `ray.kill` in a failover test)."""
        return self._actor


class RayRuntime:
    """Readers as Ray actors (see the module docstring). `num_cpus` is reserved per actor;
    `actor_options` go to `ray.remote(...).options()` (resources, scheduling strategy, runtime_env);
    `poll_wait_s` is how long an actor waits for a batch before answering "nothing yet"."""

    def __init__(self, num_cpus: float = 1.0, actor_options: Optional[dict[str, Any]] = None,
                 poll_wait_s: float = 0.1) -> None:
        self.num_cpus = num_cpus
        self.actor_options = dict(actor_options or {})
        self.poll_wait_s = poll_wait_s
        self._actor_class = ray.remote(ReaderActor)

    def create_transport(self) -> RayTransport:
        if not ray.is_initialized():
            ray.init()
        return RayTransport()

    def create_reader(self, reader_id: int, spec: ReaderSpec, transport: RayTransport,
                      available: threading.Event) -> ReaderHandle:
        options = {"num_cpus": self.num_cpus, "max_restarts": 0, "max_concurrency": 1,
                   **self.actor_options}
        actor = self._actor_class.options(**options).remote(reader_id, spec)
        transport.attach(reader_id, actor)
        return RayReaderHandle(reader_id, actor, transport, available, self.poll_wait_s)

    def close(self) -> None:
        """Nothing to release: each handle ended its actor."""
