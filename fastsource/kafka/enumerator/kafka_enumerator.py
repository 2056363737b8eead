"""The split enumerator: discovers partitions, resolves their offsets and assigns splits to readers."""
from __future__ import annotations

import logging
import time
from typing import Any, Callable, Optional

from fastsource.base.enumerator import SplitEnumeratorContext
from fastsource.kafka.admin import KafkaAdmin, TopicPartitionKey
from fastsource.errors import SerializationError, TopicRecreatedError
from fastsource.kafka.events import SplitsRemovedEvent
from fastsource.kafka.enumerator.offsets import OffsetsInitializer
from fastsource.kafka.enumerator.ranges import OffsetRange, plan_ranges
from fastsource.kafka.split import KafkaPartitionSplit, deserialize_split, serialize_split
from fastsource.kafka.enumerator.subscriber import KafkaSubscriber

log = logging.getLogger(__name__)

ENUMERATOR_STATE_VERSION = 3  # 3: topic ids; 2: partition ends; every older version still loads

# A partition counts as deleted only once this many consecutive checks, spread over at least
# `deletion_confirm_ms`, found it missing: a broker restarting (or one whose metadata lags) may
# answer for a while without topics or partitions that still exist.
DELETION_CONFIRMATIONS = 3


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


def assign_owners(splits: list[KafkaPartitionSplit], num_readers: int) -> dict[int, list[KafkaPartitionSplit]]:
    """Readers for `splits`: a partition's first split goes to its `split_owner`, the next ranges of
    that partition to the following readers, so the ranges of one partition read in parallel."""
    by_partition: dict[TopicPartitionKey, list[KafkaPartitionSplit]] = {}
    for split in splits:
        by_partition.setdefault(split.topic_partition, []).append(split)
    owners: dict[int, list[KafkaPartitionSplit]] = {}
    for (topic, partition), group in sorted(by_partition.items()):
        first = split_owner(topic, partition, num_readers)
        for k, split in enumerate(sorted(group, key=lambda s: s.starting_offset)):
            owners.setdefault((first + k) % num_readers, []).append(split)
    return owners


class KafkaSourceEnumerator:
    """Discovers partitions, turns them into splits with concrete offsets (offset ranges when
    `max_records_per_split` or `min_splits` is given, bounded sources only), and assigns each split
    to its owner reader once that reader has registered.

    Initial discovery uses the starting initializer; partitions found later start at their earliest
    offset (they may have received records before they were discovered). A bounded source signals
    `NoMoreSplits` to every reader once all splits are assigned. Every method runs on the coordinator
    thread, which owns all of the enumerator's state; the callables given to `call_async` do I/O only
    (list partitions, resolve offsets) and return their answers to a handler on that thread.
    """

    def __init__(self, subscriber: KafkaSubscriber, admin: KafkaAdmin, context: SplitEnumeratorContext,
                 starting_offsets: OffsetsInitializer, stopping_offsets: Optional[OffsetsInitializer],
                 group_id: Optional[str] = None, discovery_interval_ms: Optional[int] = None,
                 state: Optional[dict[str, Any]] = None,
                 deletion_check_interval_ms: int = 5000, deletion_confirm_ms: int = 10000,
                 max_records_per_split: Optional[int] = None, min_splits: Optional[int] = None,
                 restored_splits: Optional[list[KafkaPartitionSplit]] = None,
                 clock: Callable[[], float] = time.monotonic,
                 on_topic_recreated: str = "fail") -> None:
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
        self._deletion_confirm_s = deletion_confirm_ms / 1000
        self._clock = clock
        # known partitions that metadata lacked: (when first found missing, consecutive checks)
        self._missing: dict[TopicPartitionKey, tuple[float, int]] = {}
        self._max_records_per_split = max_records_per_split
        self._min_splits = min_splits
        self._known: set[TopicPartitionKey] = set()
        self._resolving: set[TopicPartitionKey] = set()
        self._ends: dict[TopicPartitionKey, Optional[int]] = {}
        self._pending: dict[int, list[KafkaPartitionSplit]] = {}
        self._initial_discovery_done = False
        self._no_more_splits_sent: set[int] = set()
        self._restored: list[KafkaPartitionSplit] = []
        self._awaiting_ends = False
        # the id of every topic read (KIP-516): a name that comes back with another id is a new topic
        self._topic_ids: dict[str, str] = {}
        self._on_topic_recreated = on_topic_recreated
        self._fresh: list[tuple[TopicPartitionKey, int]] = []  # recreated partitions, at restore
        if state is not None:
            self._restore(state, list(restored_splits or []))

    @property
    def bounded(self) -> bool:
        return self._stopping is not None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Schedule discovery: every `discovery_interval_ms` for an unbounded source with discovery;
        otherwise once, followed every `deletion_check_interval_ms` by a check that only looks for
        deleted partitions (whose splits would otherwise wait forever for records; see
        `_confirmed_deleted` for when a missing partition counts as deleted). A restored
        source first re-resolves where its partitions end (see `_reresolve_ends`)."""
        if self._initial_discovery_done:
            self._awaiting_ends = True
            known = sorted(self._known)
            ids = dict(self._topic_ids)
            self._context.call_async(lambda: self._restore_lookup(known, ids), self._reresolve_ends)
        period = self._discovery_interval_ms or self._deletion_check_interval_ms
        self._context.call_async(self._list_partitions, self._handle_partitions, 0, period)

    def close(self) -> None:
        """Nothing to release: the admin client is closed with the coordinator."""

    # ------------------------------------------------------------------ discovery

    def _list_partitions(self) -> tuple[set[TopicPartitionKey], dict[str, str]]:
        """I/O only (off the coordinator thread): the subscription's current partitions, and the
        ids of their topics. Strict (a missing topic is an error) until the first discovery
        succeeded."""
        partitions = self._subscriber.partitions(self._admin, strict=not self._initial_discovery_done)
        return partitions, self._admin.topic_ids({t for t, _ in partitions})

    def _recreated(self, ids: dict[str, str], known: dict[str, str]) -> dict[str, tuple[str, str]]:
        """Topics whose id in `ids` differs from the one `known` recorded: (old id, new id)."""
        return {t: (known[t], ids[t]) for t in sorted(ids) if t in known and known[t] != ids[t]}

    def _recreated_error(self, recreated: dict[str, tuple[str, str]], when: str) -> TopicRecreatedError:
        topic, (old, new) = next(iter(recreated.items()))
        others = "" if len(recreated) == 1 else f" (and {', '.join(list(recreated)[1:])})"
        hint = ("" if when == "while reading" else
                "; to read the new topic from its earliest offset, set "
                "on_topic_recreated=\"earliest\" (--on-topic-recreated earliest on the command line)")
        return TopicRecreatedError(
            f"topic {topic!r}{others} was deleted and created again {when}: its id was {old}, it is "
            f"now {new}, so the recorded offsets do not belong to its records{hint}", topic, old, new)

    def _resolve_stops(self, partitions: list[TopicPartitionKey]) -> dict[TopicPartitionKey, int]:
        """I/O only: the stopping offsets of `partitions` as they resolve now."""
        if self._stopping is None:
            return {}
        return self._stopping.resolve(self._admin, partitions, self._group_id, stopping=True)

    def _handle_partitions(self, answer: Optional[tuple[set[TopicPartitionKey], dict[str, str]]],
                           error: Optional[BaseException]) -> None:
        """On the coordinator thread: the difference with the known partitions, and a request to
        resolve the offsets of new ones. A topic read whose id changed fails the read (records of
        the new topic would otherwise pass for the old one's)."""
        if error is not None:
            raise error
        assert answer is not None
        current, ids = answer
        if not self._awaiting_ends:  # a restore compares the ids itself, before assigning
            recreated = self._recreated(ids, self._topic_ids)
            if recreated:
                raise self._recreated_error(recreated, "while reading")
        for topic, topic_id in ids.items():
            self._topic_ids.setdefault(topic, topic_id)
        removed = self._confirmed_deleted(current)
        if removed:
            self._handle_removed(removed)
        first = not self._initial_discovery_done
        if first and self._resolving:
            return  # the first discovery's offsets are still being resolved
        new = sorted(current - self._known - self._resolving) if first or self._discovery_interval_ms else []
        if not new:
            self._initial_discovery_done = True
            self._assign_pending()
            return
        self._resolving.update(new)
        starting = self._starting if first else OffsetsInitializer.earliest()

        def resolve() -> tuple[dict[TopicPartitionKey, int], dict[TopicPartitionKey, int]]:
            return (starting.resolve(self._admin, new, self._group_id), self._resolve_stops(new))

        self._context.call_async(resolve, lambda result, err: self._handle_offsets(new, result, err))

    def _handle_offsets(self, partitions: list[TopicPartitionKey],
                        result: Optional[tuple[dict[TopicPartitionKey, int], dict[TopicPartitionKey, int]]],
                        error: Optional[BaseException]) -> None:
        """On the coordinator thread: splits for the new partitions whose offsets were resolved."""
        self._resolving.difference_update(partitions)
        if error is not None:
            raise error
        assert result is not None
        starts, stops = result
        partitions = [tp for tp in partitions if tp not in self._known]
        self._initial_discovery_done = True
        for tp in partitions:
            self._known.add(tp)
            self._ends[tp] = stops.get(tp)
        if partitions:
            log.info("discovered %d new partition(s)", len(partitions))
        self._add_pending(self._plan([(tp, starts[tp], stops.get(tp)) for tp in partitions]))

    def _plan(self, spans: list[tuple[TopicPartitionKey, int, Optional[int]]]) -> list[KafkaPartitionSplit]:
        """The splits of partitions' `[start, stop)`: offset ranges when configured (bounded),
        planned over all of them together, so that `min_splits` counts splits in total."""
        splits = [KafkaPartitionSplit(t, p, start, stop) for (t, p), start, stop in spans
                  if stop is None or (self._max_records_per_split is None and self._min_splits is None)]
        if len(splits) == len(spans):
            return splits
        ranges = plan_ranges([OffsetRange(t, p, start, stop) for (t, p), start, stop in spans],
                             self._max_records_per_split, self._min_splits)
        return [KafkaPartitionSplit.range_split(r.topic, r.partition, r.start, r.stop) for r in ranges]

    def _confirmed_deleted(self, current: set[TopicPartitionKey]) -> set[TopicPartitionKey]:
        """The known partitions missing from `current` in `DELETION_CONFIRMATIONS` consecutive checks
        over at least `deletion_confirm_ms`: only those count as deleted. A partition seen again is
        no longer suspect."""
        now = self._clock()
        absent = self._known - current
        for tp in set(self._missing) - absent:
            del self._missing[tp]
            log.info("partition %s[%d] is back in the metadata", *tp)
        deleted = set()
        for tp in sorted(absent):
            first, count = self._missing.get(tp, (now, 0))
            if count == 0:
                log.info("partition %s[%d] is missing from the metadata; it counts as deleted if it "
                         "stays missing for %d checks and %g s", *tp, DELETION_CONFIRMATIONS,
                         self._deletion_confirm_s)
            self._missing[tp] = (first, count + 1)
            if count + 1 >= DELETION_CONFIRMATIONS and now - first >= self._deletion_confirm_s:
                deleted.add(tp)
                del self._missing[tp]
        return deleted

    def _handle_removed(self, removed: set[TopicPartitionKey]) -> None:
        self._known -= removed
        for tp in removed:
            self._ends.pop(tp, None)
        for topic in {t for t, _ in removed} - {t for t, _ in self._known}:
            self._topic_ids.pop(topic, None)  # gone: if it comes back, discovery reads it as new
        for reader, splits in list(self._pending.items()):
            self._pending[reader] = [s for s in splits if s.topic_partition not in removed]
        names = ", ".join(f"{t}[{p}]" for t, p in sorted(removed))
        log.warning("partition(s) deleted from Kafka, their splits end: %s", names)
        removed_ids = tuple(sorted(removed))
        for reader in self._context.registered_readers():
            self._context.send_event_to_reader(reader, SplitsRemovedEvent(removed_ids))

    # ------------------------------------------------------------------ restore: where partitions end

    def _restore_lookup(self, known: list[TopicPartitionKey], recorded: dict[str, str]
                        ) -> tuple[dict[TopicPartitionKey, int], dict[str, str],
                                   dict[TopicPartitionKey, int]]:
        """I/O only, at restore: where the known partitions stop now, the ids of their topics, and,
        for topics recreated since the checkpoint (with on_topic_recreated="earliest"), the
        earliest offset of each of their partitions now."""
        ids = self._admin.topic_ids({t for t, _ in known})
        recreated = self._recreated(ids, recorded)
        if recreated and self._on_topic_recreated == "fail":
            raise self._recreated_error(recreated, "since the checkpoint")
        restart: dict[TopicPartitionKey, int] = {}
        if recreated:
            now = self._subscriber.partitions(self._admin, strict=False)
            restart = OffsetsInitializer.earliest().resolve(
                self._admin, sorted(tp for tp in now if tp[0] in recreated), self._group_id)
        stops = self._resolve_stops(sorted(set(known) | set(restart)))
        return stops, ids, restart

    def _restart_recreated(self, ids: dict[str, str], restart: dict[TopicPartitionKey, int],
                           restored: list[KafkaPartitionSplit]) -> list[KafkaPartitionSplit]:
        """Forget the checkpointed splits and partitions of recreated topics; their partitions as
        they are now are planned afresh from `restart` (earliest offsets)."""
        recreated = self._recreated(ids, self._topic_ids)
        if not recreated:
            return restored
        for topic, (old, new) in recreated.items():
            log.warning("topic %r was deleted and created again since the checkpoint (id %s, now %s): "
                        "reading it from its earliest offset (on_topic_recreated=\"earliest\")",
                        topic, old, new)
            self._topic_ids[topic] = new
        for tp in [tp for tp in self._known if tp[0] in recreated]:
            self._known.discard(tp)
            self._ends.pop(tp, None)
        for reader, splits in list(self._pending.items()):
            self._pending[reader] = [s for s in splits if s.topic not in recreated]
        self._fresh = sorted(restart.items())
        return [split for split in restored if split.topic not in recreated]

    def _reresolve_ends(self, answer: Optional[tuple[dict[TopicPartitionKey, int], dict[str, str],
                                                     dict[TopicPartitionKey, int]]],
                        error: Optional[BaseException]) -> None:
        """A restored read goes up to the stopping point resolved now. Splits that ended a partition
        (at its recorded end, or unbounded) take the new end; explicit offsets stay; a partition
        whose splits all finished gets a new split from its recorded end to the new one when that is
        further; an unbounded source continues bounded splits past their end. Topics recreated since
        the checkpoint start again at their earliest offsets (with on_topic_recreated="earliest";
        the lookup refused them otherwise)."""
        if error is not None:
            raise error
        assert answer is not None
        stops, ids, restart = answer
        restored, self._restored = self._restored, []
        self._awaiting_ends = False
        restored = self._restart_recreated(ids, restart, restored)
        for topic, topic_id in ids.items():
            self._topic_ids.setdefault(topic, topic_id)
        stops = stops or {}
        explicit = self._stopping is not None and self._stopping.kind == "offsets"
        splits, reaching_end = [], set()
        for split in restored:
            tp = split.topic_partition
            at_end = split.stopping_offset is None or split.stopping_offset == self._ends.get(tp)
            if at_end and not explicit and tp in self._known:
                reaching_end.add(tp)
                new_stop = stops.get(tp) if self.bounded else None
                if new_stop is not None and split.stopping_offset is not None \
                        and new_stop < split.stopping_offset:
                    new_stop = split.stopping_offset
                split = split.with_stopping_offset(new_stop)
            splits.append(split)
        if not explicit:
            extensions = []
            for tp in sorted(self._known - reaching_end):
                old_end = self._ends.get(tp)
                new_end = stops.get(tp) if self.bounded else None
                if old_end is None or (new_end is not None and new_end <= old_end):
                    continue
                extensions.append((tp, old_end, new_end))
            splits.extend(self._plan(extensions))
            for tp in self._known:
                new_end = stops.get(tp) if self.bounded else None
                old_end = self._ends.get(tp)
                self._ends[tp] = new_end if new_end is None or old_end is None else max(new_end, old_end)
        fresh = []
        for tp, start in self._fresh:
            self._known.add(tp)
            stop = stops.get(tp) if self.bounded else None
            self._ends[tp] = stop
            fresh.append((tp, start, max(start, stop) if stop is not None else None))
        splits.extend(self._plan(fresh))
        self._add_pending(splits)

    # ------------------------------------------------------------------ assignment

    def _add_pending(self, splits: list[KafkaPartitionSplit]) -> None:
        for reader, owned in assign_owners(splits, self._context.current_parallelism()).items():
            self._pending.setdefault(reader, []).extend(owned)
        self._assign_pending()

    def _assign_pending(self) -> None:
        registered = self._context.registered_readers()
        assignment = {r: splits for r, splits in self._pending.items() if r in registered and splits}
        if assignment:
            self._context.assign_splits(assignment)
            for reader in assignment:
                del self._pending[reader]
        if self.bounded and self._initial_discovery_done and not self._resolving \
                and not self._awaiting_ends:
            for reader in registered:
                if not self._pending.get(reader) and reader not in self._no_more_splits_sent:
                    self._no_more_splits_sent.add(reader)
                    self._context.signal_no_more_splits(reader)

    def add_reader(self, reader_id: int) -> None:
        """A reader registered: hand it the splits held for it."""
        self._assign_pending()

    def handle_source_event(self, reader_id: int, event: Any) -> None:
        log.debug("enumerator ignores source event %r from reader %d", event, reader_id)

    def add_splits_back(self, splits: list[KafkaPartitionSplit], reader_id: int) -> None:
        """Splits of a failed reader return to the pending set and go out again at once to their
        owner once it (re)registered."""
        self._no_more_splits_sent.discard(reader_id)
        for split in splits:
            self._pending.setdefault(reader_id, []).append(split)
        self._assign_pending()

    # ------------------------------------------------------------------ checkpoints

    def snapshot_state(self, checkpoint_id: int) -> dict[str, Any]:
        """Known partitions, where each ends, and splits not yet assigned; assigned splits are
        checkpointed at their hand-over positions by the stream."""
        pending = [s for splits in self._pending.values() for s in splits] + self._restored
        return {
            "version": ENUMERATOR_STATE_VERSION,
            "known_partitions": sorted([t, p] for t, p in self._known),
            "partition_ends": sorted([t, p, e] for (t, p), e in self._ends.items()),
            "pending_splits": [serialize_split(s) for s in pending],
            "initial_discovery_done": self._initial_discovery_done,
            "topic_ids": dict(sorted(self._topic_ids.items())),
        }

    def _restore(self, state: dict[str, Any], assigned: list[KafkaPartitionSplit]) -> None:
        """Take a snapshot back (versions 1 to 3; before 3 no topic ids were kept, so a recreated
        topic is noticed only from the first look-up on). Its pending splits and the splits that
        readers held (`assigned`) all go through assignment again, so any parallelism can restore."""
        version = state.get("version")
        if version not in (1, 2, ENUMERATOR_STATE_VERSION):
            raise SerializationError(f"unknown enumerator state version {version!r}")
        try:
            self._known = {(str(t), int(p)) for t, p in state["known_partitions"]}
            self._ends = {(str(t), int(p)): (None if e is None else int(e))
                          for t, p, e in state.get("partition_ends", [])}
            self._initial_discovery_done = bool(state["initial_discovery_done"])
            pending = [deserialize_split(data) for data in state["pending_splits"]]
            self._topic_ids = {str(t): str(i) for t, i in state.get("topic_ids", {}).items()}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SerializationError(f"malformed enumerator state: {exc}") from exc
        if version == 1:
            for split in pending + assigned:
                self._ends.setdefault(split.topic_partition, split.stopping_offset)
        if not self._initial_discovery_done:
            # the first discovery never completed: partitions are planned afresh
            self._known = set()
            self._ends = {}
            return
        self._restored = pending + assigned


def group_offsets(enumerator_state: dict[str, Any],
                  assigned: list[KafkaPartitionSplit]) -> list[tuple[str, int, int]]:
    """The offset to commit per partition: the end of its completed, contiguous prefix, i.e. the
    lowest position of its unfinished splits (assigned or pending), or its end once all finished."""
    lowest: dict[tuple[str, int], int] = {}
    pending = [deserialize_split(d) for d in enumerator_state.get("pending_splits", [])]
    for split in assigned + pending:
        tp = split.topic_partition
        lowest[tp] = min(lowest.get(tp, split.starting_offset), split.starting_offset)
    for topic, partition, end in enumerator_state.get("partition_ends", []):
        if end is not None:
            lowest.setdefault((topic, partition), end)
    return [(t, p, o) for (t, p), o in sorted(lowest.items()) if o >= 0]
