"""What builds a Kafka reader where it runs: `KafkaReaderSpec`, plain picklable settings whose `build`
puts together the split reader (one compiled librdkafka consumer), the record emitter and the Kafka
source reader. It is the `ReaderSpec` that `KafkaSource` hands the runtime."""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Callable, Optional

from fastsource.base.reader.elements_queue import FutureCompletingBlockingQueue
from fastsource.base.reader.fetcher import SingleThreadFetcherManager
from fastsource.base.transport import Transport
from fastsource.base.watermarks import WatermarkStrategy
from fastsource.formats import Format
from fastsource.kafka.admin import BrokerHealth
from fastsource.kafka.reader.emitter import KafkaRecordEmitter
from fastsource.kafka.reader.source_reader import KafkaSourceReader
from fastsource.kafka.reader.split_reader import BatchLimits, KafkaPartitionSplitReader


@dataclass(frozen=True)
class KafkaReaderSpec:
    """Everything needed to build a Kafka reader, as plain (picklable) data. `split_reader_factory`,
    when set, builds the split reader instead of the Kafka one (tests inject faults with it). `health`
    is the stream's broker health, shared by readers in the stream's process (a pickled copy starts
    afresh where a remote reader runs). `include_key`/`include_value` False leave that column all
    nulls: the bytes are not copied (a reader whose output nobody reads them from)."""
    consumer_config: dict[str, str]
    include_headers: bool
    batch_limits: BatchLimits
    broker_timeout_ms: int
    key_format: Format
    value_format: Format
    commit_offsets: bool
    watermark_strategy: WatermarkStrategy
    split_reader_factory: Optional[Callable[["KafkaReaderSpec"], Any]] = None
    health: Optional[BrokerHealth] = None
    include_key: bool = True
    include_value: bool = True

    def build(self, reader_id: int, transport: Transport, available: threading.Event) -> KafkaSourceReader:
        """A Kafka source reader built from this spec, bound to `transport` (where it runs)."""
        elements = FutureCompletingBlockingQueue(capacity=2, available=available)
        factory = self.split_reader_factory or kafka_split_reader
        emitter = KafkaRecordEmitter(KafkaPartitionSplitReader.raw_schema(self.include_headers),
                                     self.key_format, self.value_format)
        manager = SingleThreadFetcherManager(elements, lambda: factory(self))
        return KafkaSourceReader(reader_id, transport, manager, emitter, self.commit_offsets,
                                 self.watermark_strategy)


def kafka_split_reader(spec: KafkaReaderSpec) -> KafkaPartitionSplitReader:
    """The default split reader: one compiled librdkafka consumer."""
    return KafkaPartitionSplitReader(spec.consumer_config, spec.include_headers, spec.batch_limits,
                                     spec.broker_timeout_ms, spec.health, spec.include_key,
                                     spec.include_value)
