"""Key and value formats: vectorized decoders from the raw binary column to an Arrow column.

A format is called once per batch with the raw `binary` array and returns an array of the same
length (nulls stay null). It raises `RecordDecodeError(row, reason)` for the first row it cannot
decode; the emitter turns that into a `DecodeError` naming topic, partition and offset.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence, Union

import pyarrow as pa

from fastsource.errors import JSON_PROBLEMS, ConfigError
from fastsource.formats import _json

ERROR_POLICIES = ("raise", "dead_letter")


class RecordDecodeError(Exception):
    """Row `row` of the batch given to a format could not be decoded."""

    def __init__(self, row: int, reason: str) -> None:
        super().__init__(reason)
        self.row = row
        self.reason = reason


class Format:
    """Base class of the formats. `errors="raise"` (default) fails the read at an undecodable record,
    naming topic, partition and offset; `errors="dead_letter"` moves such records, raw, to the
    stream's dead-letter output (`SourceStream.dead_letters()`) and goes on."""

    errors: str = "raise"

    def _set_errors(self, errors: str) -> None:
        if not isinstance(errors, str) or errors not in ERROR_POLICIES:
            raise ConfigError(f"{type(self).__name__}: errors must be one of {ERROR_POLICIES}, not {errors!r}")
        self.errors = errors

    def output_type(self) -> pa.DataType:
        """The Arrow type the format produces (known before the first record)."""
        raise NotImplementedError

    def bind(self, topics: Optional[Sequence[str]], is_key: bool, broker_timeout_ms: int) -> "Format":
        """The format as used to read `topics` (None when a pattern selects them), as keys or values,
        called once when a read starts: formats that need the topics (a Schema Registry subject) or
        the read's outage bound return a configured copy; the others return themselves."""
        return self

    def decode(self, raw: pa.Array) -> pa.Array:
        raise NotImplementedError


def as_binary(raw: pa.Array) -> pa.Array:
    """The records as a `binary` array (what the compiled decoders read: 32-bit offsets)."""
    return raw if raw.type == pa.binary() else raw.cast(pa.binary())


def _first_failing_row(raw: pa.Array, attempt: Callable[[pa.Array], object]) -> int:
    """Bisect to the first row on which `attempt` fails (only on the error path)."""
    lo, hi = 0, len(raw)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        try:
            attempt(raw.slice(lo, mid - lo))
        except (pa.ArrowException, ValueError):
            hi = mid
        else:
            lo = mid
    return lo


class Binary(Format):
    """The bytes as they are."""

    def __init__(self) -> None:
        self._set_errors("raise")

    def output_type(self) -> pa.DataType:
        return pa.binary()

    def decode(self, raw: pa.Array) -> pa.Array:
        return raw


class String(Format):
    """UTF-8 text, validated: an invalid byte sequence is a decode error."""

    def __init__(self, errors: str = "raise") -> None:
        self._set_errors(errors)

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

    def __init__(self, fn: Callable[[pa.Array], pa.Array], output_type: pa.DataType | None = None,
                 errors: str = "raise") -> None:
        if not callable(fn):
            raise ConfigError(f"Function: fn must be callable, not {fn!r}")
        if output_type is not None and not isinstance(output_type, pa.DataType):
            raise ConfigError(f"Function: output_type must be a pyarrow.DataType or None, not {output_type!r}")
        self.fn = fn
        self._type = output_type
        self._set_errors(errors)

    def output_type(self) -> pa.DataType:
        if self._type is None:
            self._type = self.decode(pa.nulls(0, pa.binary())).type  # not pa.array([]): imports pandas
        return self._type

    def decode(self, raw: pa.Array) -> pa.Array:
        result = self.fn(raw)
        if isinstance(result, pa.ChunkedArray):
            result = result.combine_chunks()
        if not isinstance(result, pa.Array) or len(result) != len(raw):
            raise ConfigError(f"format function {self.fn!r} must return a pyarrow.Array of length "
                              f"{len(raw)}, got {type(result).__name__}")
        return result


class Json(Format):
    """One JSON object per record, parsed for the whole batch at once by pyarrow's JSON reader (C++,
    multithreaded) into a struct column; the newline-delimited buffer it reads is built by the compiled
    core in one pass, which also checks every record before the parser sees it.

    With `schema`, fields are converted to its types and other fields are ignored; without, the types
    are inferred from each batch, every JSON number read as a double (a later record may always hold
    a fraction), and the stream gives all batches one type (`SourceStream`: pinned from the first
    batch handed out; `read_all()`: merged over all of them). A null Kafka value,
    an empty value and the JSON value `null` give null rows. Undecodable records (handled by `errors`)
    are: anything but one JSON object (arrays, numbers, strings, truncated or trailing data), objects
    and arrays nested more than `max_depth` levels deep (the record's object is level 1; at most
    `MAX_DEPTH_LIMIT`, which keeps the parser far from its stack limit), invalid UTF-8 anywhere in the
    record, raw control characters or invalid escapes inside strings, and whatever the parser rejects.
    Raw newlines between tokens (legal JSON whitespace) are read as spaces.
    """

    MAX_DEPTH_LIMIT = 1000

    def __init__(self, schema: Optional[pa.Schema] = None, errors: str = "raise",
                 max_depth: int = 64) -> None:
        if schema is not None and not isinstance(schema, pa.Schema):
            raise ConfigError(f"Json: schema must be a pyarrow.Schema or None, not {schema!r}")
        if (isinstance(max_depth, bool) or not isinstance(max_depth, int)
                or not 1 <= max_depth <= self.MAX_DEPTH_LIMIT):
            raise ConfigError(f"Json: max_depth must be an integer from 1 to {self.MAX_DEPTH_LIMIT}, "
                              f"not {max_depth!r}")
        self.schema = schema
        self.max_depth = max_depth
        self._set_errors(errors)

    def output_type(self) -> Optional[pa.DataType]:
        return pa.struct(list(self.schema)) if self.schema is not None else None

    def _parse(self, raw: pa.Array) -> pa.StructArray:
        import pyarrow.compute as pc  # imported on use: they cost ~35 ms at start-up
        import pyarrow.json as pa_json

        data, longest, nulls, bad = _json.json_lines(as_binary(raw), self.max_depth)
        if bad is not None:
            row, problem, where = bad
            raise RecordDecodeError(row, f"invalid JSON: {JSON_PROBLEMS[problem]} (at byte {where})")
        options = pa_json.ParseOptions(explicit_schema=self.schema,
                                       unexpected_field_behavior="ignore" if self.schema else "infer")
        # Blocks are parsed in parallel; a block must hold the longest record and its newline.
        read = pa_json.ReadOptions(block_size=max(1 << 20, 2 * longest + 2))
        table = pa_json.read_json(pa.BufferReader(data), read_options=read, parse_options=options)
        if table.num_rows != len(raw):
            raise ValueError(f"{table.num_rows} JSON rows parsed from {len(raw)} records")
        if table.num_columns == 0:  # only empty objects and nulls: nothing to infer a type from yet
            return pa.StructArray.from_buffers(self.output_type() or pa.struct([]), len(raw),
                                               [None if nulls is None else pc.invert(nulls).buffers()[1]])
        children = [c.chunk(0) if c.num_chunks == 1 else c.combine_chunks() for c in table.columns]
        decoded = pa.StructArray.from_arrays(children, fields=list(table.schema), mask=nulls)
        if self.schema is None:
            from fastsource.formats.infer import conform, widen_integers

            decoded = conform(decoded, widen_integers(decoded.type))
        return decoded

    def _parse_or_point(self, raw: pa.Array) -> pa.StructArray:
        """`_parse`, turning a parser error into the first row the parser refuses."""
        try:
            return self._parse(raw)
        except (pa.ArrowException, ValueError) as exc:
            row = _first_failing_row(raw, self._parse)
            raise RecordDecodeError(row, f"invalid JSON: {exc}") from exc

    def decode(self, raw: pa.Array) -> pa.Array:
        if len(raw) == 0:
            return pa.nulls(0, self.output_type() or pa.struct([]))
        try:
            return self._parse_or_point(raw)
        except RecordDecodeError as exc:
            if exc.row > 0:  # refused by the check: an earlier record may still be one the parser refuses
                self._parse_or_point(raw.slice(0, exc.row))
            raise


FormatLike = Union[Format, Callable[[pa.Array], pa.Array]]


def as_format(value: FormatLike, name: str = "format") -> Format:
    """A Format from a Format instance or a plain callable; `name` is the argument it was given as."""
    if isinstance(value, Format):
        return value
    if callable(value) and not isinstance(value, type):
        return Function(value)
    raise ConfigError(f"{name} must be a fastsource.formats.Format or a callable, not {value!r}")


def __getattr__(name: str) -> Any:
    """`Avro` and `Protobuf` are imported on first use: their schema libraries are optional extras."""
    if name == "Avro":
        from fastsource.formats.avro import Avro
        return Avro
    if name == "Protobuf":
        from fastsource.formats.protobuf import Protobuf
        return Protobuf
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
