"""fastsource: read Apache Kafka into Apache Arrow, with Flink's FLIP-27 source roles.

The control plane (enumerator, coordinator, readers, checkpoints) is Python; the data plane (the
consumer `fastsource.kafka._consumer`, the builders and decoders of `fastsource.formats`) is compiled
and fetches straight from librdkafka into Arrow buffers.
"""
from fastsource._librdkafka import load_core as _load_core

_load_core()

from fastsource import formats  # noqa: E402
from fastsource.errors import (AuthenticationError, BrokerUnavailableError,  # noqa: E402
                               CheckpointError, CheckpointMismatchError, ConfigError, DecodeError,
                               FastsourceError, KafkaFetchError, OffsetOutOfRangeError, ReaderFailedError,
                               RecordTooLargeError, SchemaRegistryError, UnknownTopicError)
from fastsource.errors import (DeadLettersWarning, DirectoryLockedError,  # noqa: E402
                               SerializationError, TopicRecreatedError)
from fastsource.kafka.enumerator.offsets import OffsetsInitializer  # noqa: E402
from fastsource.io.sink import ParquetDatasetSink  # noqa: E402
from fastsource.source import KafkaSource, default_parallelism  # noqa: E402
from fastsource.runtime.stream import SourceStream  # noqa: E402
from fastsource.kafka.split import KafkaPartitionSplit  # noqa: E402
from fastsource.kafka.reader.split_reader import BatchLimits  # noqa: E402
from fastsource.base.watermarks import MAX_WATERMARK, WatermarkStrategy  # noqa: E402
from fastsource.runtime.handles import InProcessRuntime  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "AuthenticationError", "BatchLimits", "BrokerUnavailableError", "CheckpointError",
    "CheckpointMismatchError", "ConfigError", "DecodeError", "FastsourceError", "InProcessRuntime",
    "KafkaFetchError", "KafkaPartitionSplit", "KafkaSource", "OffsetOutOfRangeError",
    "OffsetsInitializer", "ParquetDatasetSink", "ReaderFailedError", "RecordTooLargeError",
    "SchemaRegistryError", "SourceStream", "UnknownTopicError",
    "DeadLettersWarning", "DirectoryLockedError", "MAX_WATERMARK", "SerializationError",
    "TopicRecreatedError",
    "WatermarkStrategy", "default_parallelism", "formats", "__version__",
]
