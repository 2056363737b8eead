"""The Kafka source reader: the reader base plus deleted partitions and offset commits."""
from __future__ import annotations

import logging
from typing import Any, Optional

from fastsource.base.reader.fetcher import SingleThreadFetcherManager
from fastsource.base.reader.source_reader import SourceReaderBase
from fastsource.base.transport import Transport
from fastsource.base.watermarks import WatermarkStrategy
from fastsource.kafka.events import SplitsRemovedEvent
from fastsource.kafka.reader.emitter import KafkaRecordEmitter
from fastsource.kafka.split import KafkaPartitionSplit, KafkaPartitionSplitState

log = logging.getLogger(__name__)


class KafkaSourceReader(SourceReaderBase):
    """The Kafka reader: ends splits of deleted partitions, and commits offsets to the consumer group
    on the fetcher thread that owns its consumer (asynchronously on checkpoint completion, at once
    and synchronously for a final commit; failures are counted, never fatal, never used for
    recovery)."""

    def __init__(self, reader_id: int, transport: Transport,
                 fetcher_manager: SingleThreadFetcherManager, emitter: KafkaRecordEmitter,
                 commit_offsets: bool,
                 watermark_strategy: WatermarkStrategy = WatermarkStrategy()) -> None:
        super().__init__(reader_id, transport, fetcher_manager, emitter, watermark_strategy)
        self._commit_offsets = commit_offsets
        self.committed_offsets: dict[tuple[str, int], int] = {}
        self.commits_failed_to_send = 0

    def _initial_state(self, split: KafkaPartitionSplit) -> KafkaPartitionSplitState:
        return KafkaPartitionSplitState(split)

    def _observed(self) -> dict[str, Any]:
        """What the fetcher thread last observed of its consumer ({}: unknown)."""
        return self._fetcher_manager.observed() or {}

    def metrics(self) -> dict[str, Any]:
        """The base's metrics plus, per split, its topic, partition and high watermark as the
        fetcher thread last saw it, and the consumer's commit counters."""
        metrics = super().metrics()
        observed = self._observed()
        highs = observed.get("high_watermarks", {})
        stats = observed.get("stats", {})
        metrics.update(commits_succeeded=stats.get("commits_succeeded", 0),
                       commits_failed=stats.get("commits_failed", 0) + self.commits_failed_to_send,
                       committed_offsets=dict(self.committed_offsets))
        for split_id, entry in metrics["splits"].items():
            split = self.states[split_id].split
            high = highs.get(split.topic_partition, -1)
            entry.update(topic=split.topic, partition=split.partition,
                         high_watermark=high if high >= 0 else None)
        return metrics

    def handle_source_events(self, event: Any) -> None:
        if isinstance(event, SplitsRemovedEvent):
            removed = set(map(tuple, event.partitions))
            gone = [sid for sid, s in self.states.items() if s.split.topic_partition in removed]
            if gone:
                log.warning("reader %d ends split(s) of deleted partitions: %s", self.reader_id,
                            ", ".join(gone))
                self._fetcher_manager.remove_splits(gone)
                for split_id in gone:
                    self._on_split_finished(split_id)
        else:
            super().handle_source_events(event)

    def notify_checkpoint_complete(self, checkpoint_id: int,
                                   offsets: Optional[list[tuple[str, int, int]]] = None,
                                   flush: bool = False) -> bool:
        """Commit `(topic, partition, next_offset)` through the fetcher thread; with `flush`, wait
        until the group has them. False when this reader has no consumer to commit with."""
        if not self._commit_offsets or not offsets:
            return True
        future = self._fetcher_manager.call(lambda r: r.commit(offsets, not flush))
        if future is None:
            return False
        future.add_done_callback(lambda f: self._commit_sent(f, checkpoint_id))
        if flush:
            try:
                future.result(30.0)
            except Exception:
                pass  # counted by _commit_sent
        self.committed_offsets.update({(t, p): o for t, p, o in offsets})
        return True

    def _commit_sent(self, future: Any, checkpoint_id: int) -> None:
        error = None if future.cancelled() else future.exception()
        if future.cancelled() or error is not None:
            self.commits_failed_to_send += 1
            log.warning("reader %d could not commit offsets of checkpoint %d: %s", self.reader_id,
                        checkpoint_id, error or "the fetcher stopped")
