"""The neutral spec the runtime works on: what a source gives its stream, as factories and settings.

The runtime knows no connector. `KafkaSource.open()` (the API layer) builds a `SourceSpec` from the
Kafka layer: how to build readers where they run (`ReaderSpec`), how to create the enumerator (from a
restored checkpoint or afresh), how splits are stored in checkpoints, what a checkpoint belongs to, and
what the batches look like. `SourceStream` drives exactly that.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Callable, Optional, Protocol

import pyarrow as pa

from fastsource.base.enumerator import SplitEnumerator, SplitEnumeratorContext
from fastsource.base.reader.source_reader import SourceReaderBase, SplitLineage
from fastsource.base.split import Split, SplitState
from fastsource.base.transport import Transport
from fastsource.base.watermarks import WatermarkStrategy


class ReaderSpec(Protocol):
    """How to build one reader where it runs: picklable data (it travels to Ray actors) whose `build`
    makes the reader. `split_reader_factory`, when set, builds the split reader instead of the
    connector's own (called with the spec); a runtime sets it with `dataclasses.replace`."""

    split_reader_factory: Optional[Callable[[Any], Any]]

    def build(self, reader_id: int, transport: Transport, available: threading.Event) -> SourceReaderBase:
        """A reader with this id bound to `transport`, not started; `available` is set when it may
        have output."""


class OutputSchemas(Protocol):
    """What the stream's batches look like: `schema` (None while a format infers its type from the
    data), the undecoded `raw_schema`, and the `dead_letter_schema` of diverted records."""

    @property
    def schema(self) -> Optional[pa.Schema]: ...

    raw_schema: pa.Schema
    dead_letter_schema: pa.Schema


class SchemaPin(Protocol):
    """Gives every batch of a stream one schema when a format infers types batch by batch: the first
    batch pins it (`pinned`), later ones are conformed to it."""

    pinned: Optional[pa.Schema]

    def __call__(self, batch: pa.RecordBatch) -> pa.RecordBatch: ...


class Health(Protocol):
    """The connection health of the stream's clients: outages seen and seconds without any broker."""

    outages: int

    def down_s(self) -> float: ...


@dataclass(frozen=True)
class BoundReaders:
    """What binding a source at the start of a read gives: the reader spec and the batches' schemas."""
    reader: ReaderSpec
    schemas: OutputSchemas


@dataclass(frozen=True)
class SourceSpec:
    """A source as its stream needs it (see the module docstring).

    `bind_readers()` is called once, after the checkpoint directory is locked (formats may look their
    schema up then). `create_enumerator(context, restored)` gets the restored checkpoint (None: a fresh
    start). `identity()` is what a checkpoint belongs to; `check_identity(theirs, ours, where)` raises
    when a restored checkpoint belongs to another source. `group_offsets(enumerator_state, splits)` gives
    the `(topic, partition, next_offset)` to commit, None when the source has no consumer group.
    `first_positions(tail, lineage)` gives, per split of `lineage`, the position of the first record
    of `tail` (rows of the batch with that lineage) that belongs to it, for splits with rows in it.
    `close()` releases what the spec holds (its admin client), after the stream closed.
    """
    bind_readers: Callable[[], BoundReaders]
    create_enumerator: Callable[[SplitEnumeratorContext, Optional[dict[str, Any]]], SplitEnumerator]
    split_state: Callable[[Split], SplitState]
    serialize_split: Callable[[Split], dict[str, Any]]
    identity: Callable[[], dict[str, Any]]
    check_identity: Callable[[dict[str, Any], dict[str, Any], str], None]
    schema_pin: Callable[[], SchemaPin]
    first_positions: Callable[[pa.RecordBatch, tuple[SplitLineage, ...]], dict[str, int]]
    watermark_strategy: WatermarkStrategy
    health: Health
    close: Callable[[], None]
    group_offsets: Optional[Callable[[dict[str, Any], list[Split]], list[tuple[str, int, int]]]] = None
