"""One schema for the batches of a read whose formats infer their types from the data (`Json()` without
a schema): pinned by the first batch of a stream, or merged over all batches of `read_all()`. Works on
the key and value columns of Kafka records."""
from __future__ import annotations

import logging
from typing import Optional

import pyarrow as pa

from fastsource.base.reader.source_reader import SplitLineage
from fastsource.errors import DecodeError
from fastsource.formats.infer import TypeConflict, conform, merge_types

log = logging.getLogger(__name__)


def batch_error(batch: pa.RecordBatch, message: str) -> DecodeError:
    """A DecodeError at the first record of `batch`."""
    topic, partition, offset = (batch.column(i)[0].as_py() for i in range(3))
    return DecodeError(f"{message} (records of {topic}[{partition}] from offset {offset} among them): "
                       "give the format a schema, e.g. Json(schema=...)", topic, partition, offset)


def inferred_columns(schema: pa.Schema) -> list[int]:
    """The indexes of the columns a format may infer the type of: key and value."""
    return [schema.get_field_index(name) for name in ("key", "value")]


def merge_inferred(batches: list[tuple[pa.RecordBatch, tuple[SplitLineage, ...]]]
                   ) -> tuple[list[tuple[pa.RecordBatch, tuple[SplitLineage, ...]]], pa.Schema]:
    """Every batch conformed to one schema whose key and value types are merged over all batches
    (in an order that depends on the types only, not on which batch came first)."""
    schema = batches[0][0].schema
    columns = inferred_columns(schema)
    for index in columns:
        types = {}
        for batch, _ in batches:
            types.setdefault(str(batch.schema.field(index).type), (batch.schema.field(index).type, batch))
        merged = None
        for name in sorted(types):
            type_, batch = types[name]
            try:
                merged = type_ if merged is None else merge_types(merged, type_)
            except TypeConflict as exc:
                raise batch_error(batch, f"the inferred {schema.field(index).name} types disagree: "
                                  f"{exc}") from exc
        schema = schema.set(index, schema.field(index).with_type(merged))
    return [(conformed(batch, schema, columns), lineage) for batch, lineage in batches], schema


def conformed(batch: pa.RecordBatch, schema: pa.Schema, columns: list[int]) -> pa.RecordBatch:
    """`batch` with its `columns` conformed to their types in `schema`."""
    arrays = list(batch.columns)
    for index in columns:
        arrays[index] = conform(arrays[index], schema.field(index).type)
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


class InferredSchemaPin:
    """The stream's schema pin (`fastsource.runtime.spec.SchemaPin`) for Kafka records."""

    def __init__(self) -> None:
        self.pinned: Optional[pa.Schema] = None
        self._left_out: set[str] = set()

    def __call__(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """A stream gives every batch one schema even when a format infers its type batch by batch
        (`Json()` without a schema, in any reader, local or remote): the first batch handed out pins
        it; later batches are conformed to it (missing fields and null columns take its types).
        A field it lacks is left out, with a warning naming it once; a field of another type fails
        the read with a `DecodeError` that says to give a schema."""
        columns = inferred_columns(batch.schema)
        if self.pinned is None:
            if any(pa.types.is_struct(t) and t.num_fields == 0
                   for t in (batch.schema.field(i).type for i in columns)):
                return batch  # only nulls and empty objects so far: nothing to pin yet
            self.pinned = batch.schema
            return batch
        for index in columns:
            pinned, own = self.pinned.field(index).type, batch.schema.field(index).type
            try:
                merged = merge_types(pinned, own)
            except TypeConflict as exc:
                raise batch_error(batch, f"the {self.pinned.field(index).name} type changed after "
                                  f"the first batch pinned it: {exc}") from exc
            if merged != pinned and pa.types.is_struct(merged):
                new = [f.name for f in merged if pinned.get_field_index(f.name) < 0
                       and f.name not in self._left_out]
                if new:
                    self._left_out.update(new)
                    log.warning("field(s) %s of %s appear after the first batch pinned its type and "
                                "are left out; give the format a schema to read them",
                                ", ".join(new), self.pinned.field(index).name)
                if any(pinned.get_field_index(f.name) >= 0 and f.type != pinned.field(f.name).type
                       for f in merged):
                    raise batch_error(batch, f"the {self.pinned.field(index).name} type changed "
                                      f"after the first batch pinned it as {pinned}: now {own}")
        return conformed(batch, self.pinned, columns)
