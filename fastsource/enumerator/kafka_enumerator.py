"""The split enumerator: discovers partitions, resolves their offsets and assigns splits to readers."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Protocol

from fastsource.io.admin import KafkaAdmin, TopicPartitionKey
from fastsource.errors import SerializationError
from fastsource.runtime.events import SplitsRemovedEvent
from fastsource.enumerator.offsets import OffsetsInitializer
from fastsource.split import KafkaPartitionSplit, deserialize_split, serialize_split
from fastsource.enumerator.subscriber import KafkaSubscriber

log = logging.getLogger(__name__)

ENUMERATOR_STATE_VERSION = 1


class SplitEnumeratorContext(Protocol):
    """What the enumerator may ask of the coordinator that runs it."""

    def current_parallelism(self) -> int: ...

    def registered_readers(self) -> set[int]: ...

    def assign_splits(self, assignment: dict[int, list[KafkaPartitionSplit]]) -> None: ...

    def signal_no_more_splits(self, reader_id: int) -> None: ...

    def send_event_to_reader(self, reader_id: int, event: Any) -> None: ...

    def call_async(self, callable_: Callable[[], Any], handler: Callable[[Any, Optional[BaseException]], None],
                   initial_delay_ms: int = 0, period_ms: int = 0) -> None:
        """Run `callable_` off the coordinator thread (periodically if `period_ms` > 0), then
        `handler(result, error)` on the coordinator thread."""


def java_string_hash(text: str) -> int:
    """Java's String.hashCode, so that split ownership is stable across processes and restarts."""
    data = text.encode("utf-16-be")
    h = 0
    for i in range(0, len(data), 2):
        h = (31 * h + (data[i] << 8 | data[i + 1])) & 0xFFFFFFFF
    return h - (1 << 32) if h & 0x80000000 else h


def split_owner(topic: str, partition: int, num_readers: int) -> int:
    """The reader that owns a partition: partitions of one topic go round-robin from a start index
    derived from the topic name, so every topic is spread evenly and the result is deterministic."""
    start = ((java_string_hash(topic) * 31) & 0x7FFFFFFF) % num_readers
    return (start + partition) % num_readers


@dataclass
class PartitionChange:
    """The outcome of one discovery: splits for new partitions, and partitions that disappeared."""
    new_splits: list[KafkaPartitionSplit] = field(default_factory=list)
    removed: set[TopicPartitionKey] = field(default_factory=set)


class KafkaSourceEnumerator:
    """Discovers partitions, turns them into splits with concrete offsets, and assigns each split to
    its owner reader once that reader has registered.

    Initial discovery uses the starting initializer; partitions found later start at their earliest
    offset (they may have received records before they were discovered). A bounded source signals
    `NoMoreSplits` to every reader once all splits are assigned. Runs on the coordinator thread; only
    the discovery callable runs elsewhere.
    """

    def __init__(self, subscriber: KafkaSubscriber, admin: KafkaAdmin, context: SplitEnumeratorContext,
                 starting_offsets: OffsetsInitializer, stopping_offsets: Optional[OffsetsInitializer],
                 group_id: Optional[str] = None, discovery_interval_ms: Optional[int] = None,
                 state: Optional[dict[str, Any]] = None,
                 deletion_check_interval_ms: int = 5000) -> None:
        self._subscriber = subscriber
        self._admin = admin
        self._context = context
        self._starting = starting_offsets
        self._stopping = stopping_offsets
        self._group_id = group_id
        bounded = stopping_offsets is not None
        self._discovery_interval_ms = (discovery_interval_ms if not bounded and discovery_interval_ms
                                       and discovery_interval_ms > 0 else 0)
        self._deletion_check_interval_ms = deletion_check_interval_ms
        self._known: set[TopicPartitionKey] = set()
        self._pending: dict[int, list[KafkaPartitionSplit]] = {}
        self._initial_discovery_done = False
        self._no_more_splits_sent: set[int] = set()
        if state is not None:
            self._restore(state)

    @property
    def bounded(self) -> bool:
        return self._stopping is not None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Schedule discovery: every `discovery_interval_ms` for an unbounded source with discovery;
        otherwise once, followed every `deletion_check_interval_ms` by a check that only looks for
        deleted partitions (whose splits would otherwise wait forever for records)."""
        period = self._discovery_interval_ms or self._deletion_check_interval_ms
        self._context.call_async(self._discover, self._handle_change, 0, period)

    def close(self) -> None:
        """Nothing to release: the admin client is closed with the coordinator."""

    # ------------------------------------------------------------------ discovery (off-thread)

    def _discover(self) -> PartitionChange:
        first = not self._initial_discovery_done
        current = self._subscriber.partitions(self._admin, strict=first)
        new = sorted(current - self._known) if first or self._discovery_interval_ms else []
        change = PartitionChange(removed=self._known - current)
        if not new:
            return change
        starting = self._starting if first else OffsetsInitializer.earliest()
        starts = starting.resolve(self._admin, new, self._group_id)
        stops = (self._stopping.resolve(self._admin, new, self._group_id, stopping=True)
                 if self._stopping else {})
        change.new_splits = [KafkaPartitionSplit(t, p, starts[(t, p)], stops.get((t, p)))
                             for t, p in new]
        return change

    def _handle_change(self, change: Optional[PartitionChange], error: Optional[BaseException]) -> None:
        if error is not None:
            raise error
        assert change is not None
        self._initial_discovery_done = True
        if change.removed:
            self._handle_removed(change.removed)
        for split in change.new_splits:
            self._known.add(split.topic_partition)
            self._pending.setdefault(self._owner(split), []).append(split)
        if change.new_splits:
            log.info("discovered %d new partition(s)", len(change.new_splits))
        self._assign_pending()

    def _handle_removed(self, removed: set[TopicPartitionKey]) -> None:
        self._known -= removed
        for reader, splits in list(self._pending.items()):
            self._pending[reader] = [s for s in splits if s.topic_partition not in removed]
        names = ", ".join(f"{t}[{p}]" for t, p in sorted(removed))
        log.warning("partition(s) deleted from Kafka, their splits end: %s", names)
        ids = tuple(f"{t}-{p}" for t, p in sorted(removed))
        for reader in self._context.registered_readers():
            self._context.send_event_to_reader(reader, SplitsRemovedEvent(ids))

    # ------------------------------------------------------------------ assignment

    def _owner(self, split: KafkaPartitionSplit) -> int:
        return split_owner(split.topic, split.partition, self._context.current_parallelism())

    def _assign_pending(self) -> None:
        registered = self._context.registered_readers()
        assignment = {r: splits for r, splits in self._pending.items() if r in registered and splits}
        if assignment:
            self._context.assign_splits(assignment)
            for reader in assignment:
                del self._pending[reader]
        if self.bounded and self._initial_discovery_done:
            for reader in registered:
                if not self._pending.get(reader) and reader not in self._no_more_splits_sent:
                    self._no_more_splits_sent.add(reader)
                    self._context.signal_no_more_splits(reader)

    def add_reader(self, reader_id: int) -> None:
        """A reader registered: hand it the splits held for it."""
        self._assign_pending()

    def handle_split_request(self, reader_id: int, hostname: Optional[str] = None) -> None:
        """Kafka's enumerator pushes splits as it discovers them; requests need no answer."""

    def handle_source_event(self, reader_id: int, event: Any) -> None:
        log.debug("enumerator ignores source event %r from reader %d", event, reader_id)

    def add_splits_back(self, splits: list[KafkaPartitionSplit], reader_id: int) -> None:
        """Splits of a failed reader return to the pending set and go out again at once if their
        owner (re)registered."""
        self._no_more_splits_sent.discard(reader_id)
        for split in splits:
            self._pending.setdefault(self._owner(split), []).append(split)
        self._assign_pending()

    # ------------------------------------------------------------------ checkpoints

    def snapshot_state(self, checkpoint_id: int) -> dict[str, Any]:
        """Known partitions and splits not yet assigned; assigned splits live in reader state."""
        return {
            "version": ENUMERATOR_STATE_VERSION,
            "known_partitions": sorted([t, p] for t, p in self._known),
            "pending_splits": [serialize_split(s) for splits in self._pending.values() for s in splits],
            "initial_discovery_done": self._initial_discovery_done,
        }

    def _restore(self, state: dict[str, Any]) -> None:
        if state.get("version") != ENUMERATOR_STATE_VERSION:
            raise SerializationError(f"unknown enumerator state version {state.get('version')!r}")
        self._known = {(str(t), int(p)) for t, p in state["known_partitions"]}
        self._initial_discovery_done = bool(state["initial_discovery_done"])
        for data in state["pending_splits"]:
            split = deserialize_split(data)
            self._pending.setdefault(self._owner(split), []).append(split)
