"""The record emitter: per batch, decodes keys and values and advances the split states."""
from __future__ import annotations

from typing import Mapping, Optional

import pyarrow as pa

from fastsource.errors import DecodeError
from fastsource.formats import Format, RecordDecodeError
from fastsource.split import KafkaPartitionSplitState
from fastsource.split_reader import RecordsWithSplitIds


class KafkaRecordEmitter:
    """Turns a fetched raw batch into the user's batch. Split states advance only here, when the batch
    is handed over, so a checkpoint covers exactly the records already returned."""

    def __init__(self, raw_schema: pa.Schema, key_format: Format, value_format: Format) -> None:
        self.key_format = key_format
        self.value_format = value_format
        fields = []
        for f in raw_schema:
            if f.name == "key":
                f = pa.field("key", key_format.output_type())
            elif f.name == "value":
                f = pa.field("value", value_format.output_type())
            fields.append(f)
        self.schema = pa.schema(fields)
        self._key_index = raw_schema.get_field_index("key")
        self._value_index = raw_schema.get_field_index("value")

    def _decode(self, batch: pa.RecordBatch, index: int, fmt: Format, what: str) -> pa.Array:
        try:
            return fmt.decode(batch.column(index))
        except RecordDecodeError as exc:
            row = batch.slice(exc.row, 1)
            topic = row.column(0)[0].as_py()
            partition = row.column(1)[0].as_py()
            offset = row.column(2)[0].as_py()
            raise DecodeError(f"cannot decode the {what} of the record at {topic}[{partition}] offset "
                              f"{offset} with {type(fmt).__name__}: {exc.reason}",
                              topic, partition, offset) from exc

    def emit(self, records: RecordsWithSplitIds,
             states: Mapping[str, KafkaPartitionSplitState]) -> Optional[pa.RecordBatch]:
        batch = records.batch
        if batch is not None:
            columns = list(batch.columns)
            columns[self._key_index] = self._decode(batch, self._key_index, self.key_format, "key")
            columns[self._value_index] = self._decode(batch, self._value_index, self.value_format,
                                                      "value")
            batch = pa.RecordBatch.from_arrays(columns, schema=self.schema)
        for split_id, next_offset, max_ts, count, nbytes in records.progress:
            state = states.get(split_id)
            if state is not None:
                state.advance(next_offset, max_ts, count, nbytes)
        return batch
