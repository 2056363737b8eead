"""The record emitter: per batch, decodes keys and values and advances the split states."""
from __future__ import annotations

from typing import Mapping, Optional

import pyarrow as pa

from fastsource.errors import DecodeError
from fastsource.formats import Format, RecordDecodeError
from fastsource.kafka.split import KafkaPartitionSplitState
from fastsource.base.reader.split_reader import RecordsWithSplitIds


def _bad_rows(fmt: Format, raw: pa.Array) -> dict[int, str]:
    """Every row `fmt` cannot decode, with the reason (error path only)."""
    bad: dict[int, str] = {}
    start = 0
    while start < len(raw):
        try:
            fmt.decode(raw.slice(start))
            break
        except RecordDecodeError as exc:
            bad[start + exc.row] = exc.reason
            start += exc.row + 1
    return bad


class KafkaRecordEmitter:
    """Turns a fetched raw batch into the user's batch. Split states advance only here, when the batch
    is handed over, so a checkpoint covers exactly the records already returned.

    Undecodable records either fail the read (naming topic, partition and offset) or, with a format's
    `errors="dead_letter"`, leave the batch for `dead_letters`, raw, with the reason."""

    def __init__(self, raw_schema: pa.Schema, key_format: Format, value_format: Format) -> None:
        self.raw_schema = raw_schema
        self.key_format = key_format
        self.value_format = value_format
        self._key_index = raw_schema.get_field_index("key")
        self._value_index = raw_schema.get_field_index("value")
        self.dead_letters: list[pa.RecordBatch] = []
        self.dead_letter_schema = raw_schema.append(pa.field("error", pa.string()))

    @property
    def schema(self) -> Optional[pa.Schema]:
        """The output schema; None while a format still has to infer its type from the first batch."""
        key_type = self.key_format.output_type()
        value_type = self.value_format.output_type()
        if key_type is None or value_type is None:
            return None
        schema = self.raw_schema.set(self._key_index, pa.field("key", key_type))
        return schema.set(self._value_index, pa.field("value", value_type))

    def _fail(self, batch: pa.RecordBatch, row: int, what: str, fmt: Format, reason: str) -> DecodeError:
        topic = batch.column(0)[row].as_py()
        partition = batch.column(1)[row].as_py()
        offset = batch.column(2)[row].as_py()
        return DecodeError(f"cannot decode the {what} of the record at {topic}[{partition}] offset "
                           f"{offset} with {type(fmt).__name__}: {reason}", topic, partition, offset)

    def _decode(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        columns = list(batch.columns)
        for index, fmt, what in ((self._key_index, self.key_format, "key"),
                                 (self._value_index, self.value_format, "value")):
            try:
                columns[index] = fmt.decode(batch.column(index))
            except RecordDecodeError as exc:
                raise self._fail(batch, exc.row, what, fmt, exc.reason) from exc
        schema = self.schema
        if schema is None:
            return pa.RecordBatch.from_arrays(columns, names=self.raw_schema.names)
        return pa.RecordBatch.from_arrays(columns, schema=schema)

    def _decode_or_divert(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        formats = ((self._key_index, self.key_format, "key"),
                   (self._value_index, self.value_format, "value"))
        try:
            return self._decode(batch)
        except DecodeError:
            if all(fmt.errors == "raise" for _, fmt, _ in formats):
                raise
        reasons: dict[int, str] = {}
        for index, fmt, what in formats:
            for row, reason in sorted(_bad_rows(fmt, batch.column(index)).items()):
                if fmt.errors == "raise":
                    raise self._fail(batch, row, what, fmt, reason)
                reasons.setdefault(row, f"{what}: {reason}")
        while True:  # the records left may still disagree with each other (a format inferring types)
            kept = [i for i in range(batch.num_rows) if i not in reasons]
            conflict = self._first_conflict(batch.take(pa.array(kept, pa.int64())), formats)
            if conflict is None:
                break
            row, what, fmt, reason = conflict
            if fmt.errors == "raise":
                raise self._fail(batch, kept[row], what, fmt, reason)
            reasons[kept[row]] = f"{what}: {reason}"
        mask = pa.array([i in reasons for i in range(batch.num_rows)])
        keep = pa.array([i not in reasons for i in range(batch.num_rows)])
        dead = batch.filter(mask)
        errors = pa.array([reasons[i] for i in sorted(reasons)], pa.string())
        self.dead_letters.append(pa.RecordBatch.from_arrays(
            list(dead.columns) + [errors], schema=self.dead_letter_schema))
        return self._decode(batch.filter(keep))

    @staticmethod
    def _first_conflict(batch: pa.RecordBatch, formats: tuple) -> Optional[tuple[int, str, Format, str]]:
        """The first row of `batch` a format refuses when decoding the whole column (e.g. a JSON
        field that is an array in one record and an object in a later one), or None."""
        for index, fmt, what in formats:
            try:
                fmt.decode(batch.column(index))
            except RecordDecodeError as exc:
                return exc.row, what, fmt, exc.reason
        return None

    def emit(self, records: RecordsWithSplitIds,
             states: Mapping[str, KafkaPartitionSplitState]) -> Optional[pa.RecordBatch]:
        batch = records.batch
        if batch is not None:
            batch = self._decode_or_divert(batch)
        for split_id, next_offset, max_ts, count, nbytes in records.progress:
            state = states.get(split_id)
            if state is not None:
                state.advance(next_offset, max_ts, count, nbytes)
        return batch
