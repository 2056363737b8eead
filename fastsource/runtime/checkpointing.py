"""Checkpointing: the stream's durable snapshots (the enumerator's state and every unfinished split at
its hand-over position), the identity check of a restored checkpoint, two-phase sinks, and offsets
committed to a consumer group. A part of `SourceStream` (a mixin using the stream's coordinator,
positions, readers and checkpoint store)."""
from __future__ import annotations

import concurrent.futures
import logging
from typing import Any, Optional, Protocol

from fastsource.base.split import Split
from fastsource.errors import CheckpointTimeoutError, ConfigError, FastsourceError

log = logging.getLogger(__name__)


class TwoPhaseSink(Protocol):
    """A sink tied to the stream's checkpoints (e.g. `fastsource.ParquetDatasetSink`)."""

    def recover(self, checkpoint_id: Optional[int]) -> None: ...

    def pre_commit(self, checkpoint_id: int) -> None: ...

    def commit(self, checkpoint_id: int) -> None: ...

    def close(self) -> None: ...


class Checkpointing:
    """Checkpoints and commits of a `SourceStream`."""

    def _check_identity(self, restored: dict[str, Any]) -> None:
        """Refuse a checkpoint of another source (older checkpoints carry no identity)."""
        theirs = restored.get("source")
        if theirs is not None:
            self.spec.check_identity(theirs, self._identity or {},
                                     f"checkpoint {restored['checkpoint_id']} in {self._store.directory}")

    def _offsets_to_commit(self, enumerator_state: dict[str, Any], splits: list[Split]) -> list[tuple[str, int, int]]:
        """The source's group offsets for this snapshot ([] without a consumer group)."""
        if self.spec.group_offsets is None:
            return []
        return self.spec.group_offsets(enumerator_state, splits)

    def _snapshot(self, checkpoint_id: int) -> tuple[dict[str, Any], list[Split]]:
        """The enumerator's state and every unfinished assigned split at its hand-over position."""
        enumerator_state, assigned = self._coordinator.snapshot(checkpoint_id).result(timeout=60)
        splits = []
        for split in assigned:
            if split.split_id in self._finished:
                continue
            state = self._positions.get(split.split_id)
            splits.append(split.with_starting_offset(state.current_offset) if state else split)
        held = {split.split_id for split in splits}
        splits.extend(split for split_id, split in self._reopened.items() if split_id not in held)
        return enumerator_state, splits

    def checkpoint(self) -> int:
        """Snapshot the enumerator and the hand-over positions; durable when this returns. Needs
        checkpoint_dir. Offsets go to the consumer group (with group_id) once it is durable. A
        checkpoint that fails (e.g. a CheckpointError) commits nothing; the next one covers it all."""
        with self._lock:
            return self._checkpoint()

    def _checkpoint(self) -> int:
        if self._closed:
            raise FastsourceError("checkpoint() on a closed stream: nothing is left to snapshot")
        if self._store is None:
            raise ConfigError("checkpoint() needs the stream to be opened with a checkpoint_dir")
        if self._failure is not None:
            raise self._failure
        checkpoint_id = self._store.next_id()
        try:
            enumerator_state, splits = self._snapshot(checkpoint_id)
            readers = [reader.snapshot(checkpoint_id) for reader in self.readers]
        except (TimeoutError, concurrent.futures.TimeoutError) as exc:
            raise CheckpointTimeoutError(f"checkpoint {checkpoint_id} timed out: {exc}") from exc
        for sink in self._sinks:
            sink.pre_commit(checkpoint_id)
        self._store.write(checkpoint_id, {
            "source": self._identity,
            "parallelism": self.parallelism,
            "enumerator": enumerator_state,
            "splits": [self.spec.serialize_split(s) for s in splits],
            "readers": readers,
        })
        for sink in self._sinks:
            sink.commit(checkpoint_id)
        self._commit(checkpoint_id, self._offsets_to_commit(enumerator_state, splits))
        return checkpoint_id

    def commit(self) -> None:
        """Commit the offsets handed out so far to the consumer group now, without a checkpoint, and
        wait for the answer: per partition the next offset to hand out (its end once read to the
        end). For outputs that deliver every batch as it is handed out, as Kafka's console consumer
        commits what it printed; `metrics()["commits_failed"]` counts a commit that failed. Needs
        `group_id`."""
        if self.spec.group_offsets is None:
            raise ConfigError("commit() needs a group_id on the source")
        if self._closed:
            raise FastsourceError("commit() on a closed stream: its readers are gone")
        enumerator_state, splits = self._snapshot(0)
        self._commit(0, self._offsets_to_commit(enumerator_state, splits), flush=True)

    def _commit(self, checkpoint_id: int, offsets: list[tuple[str, int, int]],
                flush: bool = False) -> None:
        """Send `offsets` to the group through the first reader that has a consumer."""
        if self.spec.group_offsets is None or not offsets:
            return
        for reader in self.readers:
            if reader.notify_checkpoint_complete(checkpoint_id, offsets, flush):
                self._committed.update({(t, p): o for t, p, o in offsets})
                return
        log.debug("no reader had a consumer to commit offsets of checkpoint %d with", checkpoint_id)

    def _commit_final(self) -> None:
        """At the end of a bounded read, the group gets every partition's end, flushed before the
        readers close (Flink commits finished splits' offsets too)."""
        if self._final_commit_done or self.spec.group_offsets is None:
            return
        self._final_commit_done = True
        enumerator_state, splits = self._snapshot(0)
        self._commit(0, self._offsets_to_commit(enumerator_state, splits), flush=True)

    def attach(self, sink: TwoPhaseSink) -> TwoPhaseSink:
        """Tie a two-phase sink to this stream's checkpoints: it is recovered to the restored
        checkpoint now, pre-committed before each checkpoint is written and committed after."""
        if self._store is None:
            raise ConfigError("a sink needs the stream to be opened with a checkpoint_dir")
        sink.recover(self.restored_checkpoint_id)
        self._sinks.append(sink)
        return sink
