"""Key and value formats: vectorized decoders from the raw binary column to an Arrow column.

A format is called once per batch with the raw `binary` array and returns an array of the same
length (nulls stay null). It raises `RecordDecodeError(row, reason)` for the first row it cannot
decode; the emitter turns that into a `DecodeError` naming topic, partition and offset.
"""
from __future__ import annotations

from typing import Callable, Union

import pyarrow as pa


class RecordDecodeError(Exception):
    """Row `row` of the batch given to a format could not be decoded."""

    def __init__(self, row: int, reason: str) -> None:
        super().__init__(reason)
        self.row = row
        self.reason = reason


class Format:
    """Base class of the built-in formats."""

    def output_type(self) -> pa.DataType:
        """The Arrow type the format produces (known before the first record)."""
        raise NotImplementedError

    def decode(self, raw: pa.Array) -> pa.Array:
        raise NotImplementedError


def _first_failing_row(raw: pa.Array, attempt: Callable[[pa.Array], object]) -> int:
    """Bisect to the first row on which `attempt` fails (only on the error path)."""
    lo, hi = 0, len(raw)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        try:
            attempt(raw.slice(lo, mid - lo))
        except (pa.ArrowInvalid, ValueError):
            hi = mid
        else:
            lo = mid
    return lo


class Binary(Format):
    """The bytes as they are."""

    def output_type(self) -> pa.DataType:
        return pa.binary()

    def decode(self, raw: pa.Array) -> pa.Array:
        return raw


class String(Format):
    """UTF-8 text, validated: an invalid byte sequence is a decode error."""

    def output_type(self) -> pa.DataType:
        return pa.string()

    def decode(self, raw: pa.Array) -> pa.Array:
        try:
            return raw.cast(pa.string())
        except pa.ArrowInvalid as exc:
            row = _first_failing_row(raw, lambda part: part.cast(pa.string()))
            raise RecordDecodeError(row, f"invalid UTF-8: {exc}") from exc


class Function(Format):
    """A user function over the raw binary array returning an array of the same length."""

    def __init__(self, fn: Callable[[pa.Array], pa.Array], output_type: pa.DataType | None = None) -> None:
        self.fn = fn
        self._type = output_type

    def output_type(self) -> pa.DataType:
        if self._type is None:
            self._type = self.decode(pa.array([], pa.binary())).type
        return self._type

    def decode(self, raw: pa.Array) -> pa.Array:
        result = self.fn(raw)
        if isinstance(result, pa.ChunkedArray):
            result = result.combine_chunks()
        if not isinstance(result, pa.Array) or len(result) != len(raw):
            raise TypeError(f"format function {self.fn!r} must return a pyarrow.Array of length "
                            f"{len(raw)}, got {type(result).__name__}")
        return result


FormatLike = Union[Format, Callable[[pa.Array], pa.Array]]


def as_format(value: FormatLike) -> Format:
    """A Format from a Format instance or a plain callable."""
    if isinstance(value, Format):
        return value
    if callable(value):
        return Function(value)
    raise TypeError(f"a format must be a fastsource.formats.Format or a callable, not {value!r}")
