"""`RayRuntime`: a stream's readers as Ray actors; the coordinator and the enumerator stay in the driver.

    with source.open(parallelism=4, checkpoint_dir="chk", runtime=RayRuntime()) as stream:
        for batch in stream: ...

Each reader runs in its own actor, built there from the stream's `ReaderSpec` with its own consumer.
The driver's handle keeps one `poll` call in flight per actor, so an actor fetches and decodes the next
batch while the driver works on the last; batches come back through Ray's object store as Arrow
buffers. Messages between the coordinator and an actor are the runtime's plain events, carried on
both sides by the same `InProcessTransport` every runtime uses: in the driver, a reader's delivery
function calls its actor's `deliver` (Ray runs one caller's calls to an actor in order); in the
actor, the coordinator's delivery function puts into an outbox that rides back with every answer, as
do the records a format diverted to dead letters. A killed actor makes its handle's `poll` raise
`ReaderActorDiedError`; the stream then replaces the reader (a new actor) and its splits resume
right after the last record the stream handed out (positions are kept in the driver), so no record
is lost or repeated.
"""
from __future__ import annotations

import threading
from typing import Any, Optional, TypeVar

import pyarrow as pa
import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

from fastsource.base.reader.source_reader import NOTHING, InputStatus, ReaderOutput
from fastsource.base.transport import Transport
from fastsource.errors import FS_READER_DIED, error_from_code
from fastsource.runtime.handles import InProcessReaderHandle, ReaderHandle
from fastsource.runtime.spec import Health, ReaderSpec
from fastsource.runtime.transport import InProcessTransport

CALL_TIMEOUT_S = 60.0
T = TypeVar("T")


class Outbox:
    """Messages a reader's actor has for the coordinator, waiting for the next answer to carry them
    back (the coordinator side of the actor's transport)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._outgoing: list[Any] = []

    def put(self, event: Any) -> None:
        with self._lock:
            self._outgoing.append(event)

    def drain(self) -> list[Any]:
        with self._lock:
            events, self._outgoing = self._outgoing, []
        return events


class ReaderActor:
    """One reader inside a Ray actor (methods run one at a time, on one thread, as a reader needs);
    every answer is `(result, events for the coordinator, broker health reports)`: the health in
    the actor is a reporting copy of the stream's (`Health`), whose reports the driver applies
    to the stream's own, so that outages a reader saw count in the stream's metrics."""

    def __init__(self, reader_id: int, spec: ReaderSpec) -> None:
        self._reader_id = reader_id
        self._outbox = Outbox()
        self._health = spec.health
        self._transport = InProcessTransport()
        self._transport.bind_coordinator(self._outbox.put)
        self._available = threading.Event()
        self._handle = InProcessReaderHandle(spec.build(reader_id, self._transport, self._available))

    def _reply(self, result: T) -> tuple[T, list[Any], list[tuple[str, float]]]:
        return result, self._outbox.drain(), self._health.take_reports() if self._health else []

    def start(self) -> tuple[None, list[Any], list[tuple[str, float]]]:
        self._handle.start()
        return self._reply(None)

    def deliver(self, events: list[Any]) -> None:
        for event in events:
            self._transport.send_to_reader(self._reader_id, event)

    def poll(self, wait_s: float) -> tuple[tuple[ReaderOutput, list[pa.RecordBatch]], list[Any],
                                           list[tuple[str, float]]]:
        """The reader's next output and the records diverted to dead letters while producing it,
        waiting up to `wait_s` for an output when it has none."""
        self._available.clear()
        output = self._handle.poll()
        if output.status is InputStatus.NOTHING_AVAILABLE:
            self._available.wait(wait_s)
            output = self._handle.poll()
        return self._reply((output, self._handle.dead_letters()))

    def snapshot(self, checkpoint_id: int) -> tuple[dict[str, Any], list[Any], list[tuple[str, float]]]:
        return self._reply(self._handle.snapshot(checkpoint_id))

    def notify_checkpoint_complete(self, checkpoint_id: int, offsets: list[tuple[str, int, int]],
                                   flush: bool) -> tuple[bool, list[Any], list[tuple[str, float]]]:
        return self._reply(self._handle.notify_checkpoint_complete(checkpoint_id, offsets, flush))

    def metrics(self) -> tuple[dict[str, Any], list[Any], list[tuple[str, float]]]:
        return self._reply(self._handle.metrics())

    def close(self) -> None:
        self._handle.close()


class RayReaderHandle:
    """The driver's handle on one reader actor (see the module docstring)."""

    def __init__(self, reader_id: int, actor: Any, transport: Transport,
                 available: threading.Event, poll_wait_s: float,
                 health: Optional[Health] = None) -> None:
        self.reader_id = reader_id
        self._actor = actor
        self._transport = transport
        self._health = health
        self._available = available
        self._poll_wait_s = poll_wait_s
        self._pending: Optional[Any] = None
        self._dead_letters: list[pa.RecordBatch] = []
        self._ended = False
        self._closed = False

    def _answer(self, ref: Any, timeout: Optional[float] = CALL_TIMEOUT_S) -> Any:
        """The result of an actor call, after its events went to the coordinator and its health
        reports to the stream's health. A dead actor raises ReaderActorDiedError; the reader's own
        error is re-raised as it was (the stream judges it)."""
        try:
            result, events, reports = ray.get(ref, timeout=timeout)
        except RayActorError as exc:
            raise error_from_code(FS_READER_DIED, f"the actor of reader {self.reader_id} died: {exc}") from exc
        except RayTaskError as exc:
            cause = exc.cause if isinstance(exc.cause, Exception) else exc
            raise cause from exc
        except GetTimeoutError as exc:
            raise error_from_code(FS_READER_DIED, f"the actor of reader {self.reader_id} did not answer "
                                  f"within {timeout:g} s") from exc
        if self._health is not None:
            self._health.apply_reports(reports)
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
        self._transport.unbind_reader(self.reader_id)
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

    def create_transport(self) -> Transport:
        """The driver's side: the coordinator is called directly, and a reader's delivery function
        (bound by `create_reader`) forwards to its actor."""
        if not ray.is_initialized():
            ray.init()
        return InProcessTransport()

    def create_reader(self, reader_id: int, spec: ReaderSpec, transport: Transport,
                      available: threading.Event) -> ReaderHandle:
        options = {"num_cpus": self.num_cpus, "max_restarts": 0, "max_concurrency": 1,
                   **self.actor_options}
        actor = self._actor_class.options(**options).remote(reader_id, spec)
        # a dead actor drops what is sent to it: its splits come back on failover
        transport.bind_reader(reader_id, lambda event: actor.deliver.remote([event]))
        return RayReaderHandle(reader_id, actor, transport, available, self.poll_wait_s, spec.health)

    def close(self) -> None:
        """Nothing to release: each handle ended its actor."""
