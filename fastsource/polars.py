"""Kafka as a Polars LazyFrame: `scan_kafka` reads only what a query asks for.

An optional extra (`pip install 'fastsource[polars]'`): `import fastsource` never imports Polars;
importing this module without it raises an ImportError saying what to install.

The scan is a Polars IO plugin (`polars.io.plugins.register_io_source`). When the query runs,
Polars hands it the columns it needs, a predicate and a row limit, and the scan turns them into
less reading:

- a predicate on `timestamp` (`>`, `>=`, `<`, `<=`, `==`, `is_between`, joined with `&`) becomes
  starting offsets per partition through the broker's offsets-for-times (the first record at or
  after the lower bound; nothing before it can match), and, when the topic's timestamps are known
  to be at most `max_out_of_orderness_ms` out of order, stopping offsets too;
- a predicate on `partition` or `offset` (the same comparisons, and `is_in`) narrows the partitions
  read and their offset ranges;
- columns not asked for are not built: no headers, no decoded key or value; with `unnest_value`,
  a `Json` value with a schema decodes only the fields asked for;
- a row limit (`head(n)`, `limit(n)`) stops the read once it has that many rows.

The whole predicate is still applied to every batch read, so a query returns exactly what the same
filter gives over a full read, whatever the order of the timestamps in a partition. An unbounded
source is bounded at each partition's end when the query starts.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional, Sequence

try:
    import polars as pl
    from polars.io.plugins import register_io_source
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("fastsource.polars needs Polars: pip install 'fastsource[polars]'") from exc

import pyarrow as pa

from fastsource.kafka.enumerator.offsets import OffsetsInitializer
from fastsource.errors import ConfigError
from fastsource.formats import Binary, Format, FormatLike, Json
from fastsource.kafka.admin import TopicPartitionKey
from fastsource.kafka.reader.split_reader import BatchLimits, KafkaPartitionSplitReader
from fastsource.kafka.reader.spec import KafkaReaderSpec
from fastsource.source import KafkaSource, default_parallelism
from fastsource.validation import check_bool, check_int

__all__ = ["Pushdown", "pushdown_of", "scan_kafka"]

#: The columns of a scan before `unnest_value`, as `KafkaSource` makes them (`topic` as a string).
KAFKA_COLUMNS = ("topic", "partition", "offset", "timestamp", "timestamp_type", "key", "value", "headers")
_UNITS_PER_MS = {"Milliseconds": 1, "Microseconds": 1_000, "Nanoseconds": 1_000_000}
_FLIPPED = {"Gt": "Lt", "GtEq": "LtEq", "Lt": "Gt", "LtEq": "GtEq", "Eq": "Eq"}
_BETWEEN = {"Both": ("GtEq", "LtEq"), "Left": ("GtEq", "Lt"), "Right": ("Gt", "LtEq"), "None": ("Gt", "Lt")}


@dataclass
class Pushdown:
    """What a predicate lets a scan skip: every row the predicate keeps has its timestamp (ms), its
    offset and its partition in the half-open ranges `[from, until)` (None: that side unbounded)
    and its partition in `partitions` (None: any). Bounds come only from the conjuncts (`&`) the
    scan understands; the rest of the predicate bounds nothing and is applied to the rows read."""

    timestamp_from: Optional[int] = None
    timestamp_until: Optional[int] = None
    offset_from: Optional[int] = None
    offset_until: Optional[int] = None
    partition_from: Optional[int] = None
    partition_until: Optional[int] = None
    partitions: Optional[frozenset[int]] = None

    def bound(self, column: str, low: Optional[int], high: Optional[int]) -> None:
        """Narrow `column`'s range to `[low, high)`."""
        if low is not None:
            current = getattr(self, f"{column}_from")
            setattr(self, f"{column}_from", low if current is None else max(current, low))
        if high is not None:
            current = getattr(self, f"{column}_until")
            setattr(self, f"{column}_until", high if current is None else min(current, high))

    def keep(self, partitions: Iterable[int]) -> None:
        """Narrow the partitions read to `partitions`."""
        wanted = frozenset(partitions)
        self.partitions = wanted if self.partitions is None else self.partitions & wanted

    def reads_partition(self, partition: int) -> bool:
        """Whether a row of `partition` can pass the predicate."""
        return ((self.partitions is None or partition in self.partitions)
                and (self.partition_from is None or partition >= self.partition_from)
                and (self.partition_until is None or partition < self.partition_until))


def _interval(op: str, value: int, units_per_ms: int) -> tuple[Optional[int], Optional[int]]:
    """`column <op> value` as a half-open range `[low, high)` of integers, where one unit of the
    column is `units_per_ms` units of the literal (1 for offsets and partitions)."""
    floor, ceil = value // units_per_ms, -(-value // units_per_ms)
    return {"GtEq": (ceil, None), "Gt": (floor + 1, None), "LtEq": (None, floor + 1),
            "Lt": (None, ceil), "Eq": (ceil, floor + 1)}[op]


def _literal(node: Any, column: str) -> Optional[tuple[int, int]]:
    """An integer literal with its units per column unit, or None when the node is not a literal
    that can bound `column` (a time without a time zone bounds nothing)."""
    literal = node.get("Literal") if isinstance(node, dict) else None
    if not isinstance(literal, dict):
        return None
    if column == "timestamp":
        scalar = literal.get("Scalar")
        value = scalar.get("Datetime") if isinstance(scalar, dict) else None
        if (isinstance(value, list) and len(value) == 3 and isinstance(value[0], int)
                and value[1] in _UNITS_PER_MS and value[2] is not None):
            return value[0], _UNITS_PER_MS[value[1]]
        return None
    for kind in ("Scalar", "Dyn"):
        inner = literal.get(kind)
        if isinstance(inner, dict) and len(inner) == 1:
            (name, value), = inner.items()
            if name.startswith(("Int", "UInt")) and isinstance(value, int) and not isinstance(value, bool):
                return value, 1
    return None


def _listed(node: Any) -> Optional[list[int]]:
    """The integers of an `is_in` list literal (Polars serializes it as an Arrow IPC stream)."""
    try:
        table = pa.ipc.open_stream(bytes(node["Literal"]["Scalar"]["List"])).read_all()
        values = table.column(0).to_pylist() if table.num_columns == 1 else None
    except (KeyError, TypeError, ValueError, pa.ArrowException):
        return None
    if values is None or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return None
    return values


def _conjuncts(node: Any) -> Iterator[Any]:
    binary = node.get("BinaryExpr") if isinstance(node, dict) else None
    if isinstance(binary, dict) and binary.get("op") in ("And", "LogicalAnd"):
        yield from _conjuncts(binary.get("left"))
        yield from _conjuncts(binary.get("right"))
    else:
        yield node


def _column(node: Any) -> Optional[str]:
    """The bounded column a node reads, seeing through a change of the timestamp's time unit (ms
    to a finer unit is exact; DuckDB compares in microseconds)."""
    if not isinstance(node, dict):
        return None
    function = node.get("Function")
    if isinstance(function, dict) and len(function.get("input") or []) == 1:
        kind = function.get("function")
        temporal = kind.get("TemporalExpr") if isinstance(kind, dict) else None
        if isinstance(temporal, dict) and "CastTimeUnit" in temporal:
            return "timestamp" if _column(function["input"][0]) == "timestamp" else None
        return None
    name = node.get("Column")
    return name if name in ("timestamp", "offset", "partition") else None


def _comparisons(node: Any) -> Iterator[tuple[str, str, Any]]:
    """(column, op, literal node) of a comparison or an `is_between` on a bounded column."""
    if "BinaryExpr" in node:
        binary = node["BinaryExpr"]
        op, left, right = binary.get("op"), binary.get("left"), binary.get("right")
        if op not in _FLIPPED:
            return
        if _column(left) is not None:
            yield _column(left), op, right
        elif _column(right) is not None:
            yield _column(right), _FLIPPED[op], left
    elif "Function" in node:
        inputs = node["Function"].get("input") or []
        kind = node["Function"].get("function")
        boolean = kind.get("Boolean") if isinstance(kind, dict) else None
        column = _column(inputs[0]) if inputs else None
        if column is None or not isinstance(boolean, dict) or "IsBetween" not in boolean or len(inputs) != 3:
            return
        closed = (boolean["IsBetween"] or {}).get("closed", "Both")
        for op, literal in zip(_BETWEEN.get(closed, ()), inputs[1:]):
            yield column, op, literal


def _memberships(node: Any) -> Iterator[tuple[str, list[int]]]:
    """(column, values) of an `is_in` on `offset` or `partition`."""
    function = node.get("Function") if isinstance(node, dict) else None
    if not isinstance(function, dict):
        return
    inputs = function.get("input") or []
    kind = function.get("function")
    boolean = kind.get("Boolean") if isinstance(kind, dict) else None
    column = _column(inputs[0]) if inputs else None
    if column in ("offset", "partition") and isinstance(boolean, dict) and "IsIn" in boolean and len(inputs) == 2:
        values = _listed(inputs[1])
        if values is not None:
            yield column, values


def pushdown_of(predicate: Optional[pl.Expr]) -> Pushdown:
    """The bounds a Polars predicate puts on `timestamp`, `offset` and `partition`.

    Read from the predicate's serialized plan; a part the scan does not understand bounds nothing
    (it is still applied to the rows read), so this never narrows a read wrongly."""
    pushdown = Pushdown()
    if predicate is None:
        return pushdown
    try:
        tree = json.loads(predicate.meta.serialize(format="json"))
    except Exception:  # a plan Polars cannot serialize: bound nothing, filter what is read
        return pushdown
    for node in _conjuncts(tree):
        if not isinstance(node, dict):
            continue
        for column, op, literal_node in _comparisons(node):
            literal = _literal(literal_node, column)
            if literal is not None:
                pushdown.bound(column, *_interval(op, *literal))
        for column, values in _memberships(node):
            if column == "partition":
                pushdown.keep(values)
            else:
                pushdown.bound(column, min(values, default=0), max(values, default=-1) + 1)
    return pushdown


@dataclass
class ReadPlan:
    """The offset range `[start, stop)` of every partition a query reads, after pushdown."""

    ranges: dict[TopicPartitionKey, tuple[int, int]] = field(default_factory=dict)

    @property
    def records(self) -> int:
        """Offsets in the ranges (an upper bound on the records fetched)."""
        return sum(stop - start for start, stop in self.ranges.values())


def _narrowed(fmt: Format, fields: Sequence[str]) -> Format:
    """`fmt` decoding only `fields` of its struct, where the format allows it (Json with a schema
    converts only the fields of its schema and ignores the others)."""
    if isinstance(fmt, Json) and fmt.schema is not None:
        return Json(schema=pa.schema([fmt.schema.field(name) for name in fields]), errors=fmt.errors,
                    max_depth=fmt.max_depth)
    return fmt


class _ProjectedSource(KafkaSource):
    """A bounded KafkaSource whose readers leave the key or the value column null, without copying
    their bytes, when the query does not use them."""

    def __init__(self, *args: Any, include_key: bool = True, include_value: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.include_key = include_key
        self.include_value = include_value

    def reader_spec(self) -> KafkaReaderSpec:
        return dataclasses.replace(super().reader_spec(), include_key=self.include_key,
                                   include_value=self.include_value)


class _Scan:
    """One `scan_kafka` call: the source's arguments, the Arrow schema the LazyFrame shows, and the
    read each query makes (planned when the query runs)."""

    def __init__(self, arguments: dict[str, Any], max_out_of_orderness_ms: Optional[int], unnest_value: bool,
                 parallelism: Optional[int], on_read: Optional[Callable[[dict[str, Any]], None]]) -> None:
        self.arguments = arguments
        self.source = source = KafkaSource(**arguments)
        self.max_out_of_orderness_ms = max_out_of_orderness_ms
        self.unnest_value = unnest_value
        self.parallelism = parallelism
        self.on_read = on_read
        key_type, value_type = source.key_format.output_type(), source.value_format.output_type()
        for name, fmt, arrow_type in (("key_format", source.key_format, key_type),
                                      ("value_format", source.value_format, value_type)):
            if arrow_type is None:
                raise ConfigError(f"scan_kafka needs the type of every column before reading: give "
                                  f"{name}={type(fmt).__name__}(schema=...)")
        fields = [pa.field("topic", pa.string(), nullable=False)]
        raw = KafkaPartitionSplitReader.raw_schema(source.include_headers)
        fields += [f for f in raw if f.name not in ("topic", "key", "value", "headers")]
        fields.append(pa.field("key", key_type))
        self.value_fields: list[str] = []
        if unnest_value:
            if not pa.types.is_struct(value_type):
                raise ConfigError(f"unnest_value=True needs a value format that makes a struct (e.g. "
                                  f"Json(schema=...)), not one that makes {value_type}")
            taken = set(KAFKA_COLUMNS)
            for child in value_type:
                if child.name in taken:
                    raise ConfigError(f"unnest_value=True: the value's field {child.name!r} has the "
                                      "name of a Kafka column; read it with unnest_value=False")
                taken.add(child.name)
                fields.append(child)
                self.value_fields.append(child.name)
        else:
            fields.append(pa.field("value", value_type))
        if source.include_headers:
            fields.append(raw.field("headers"))
        self.schema = pa.schema(fields)

    def polars_schema(self) -> pl.Schema:
        return pl.from_arrow(self.schema.empty_table()).schema

    def plan(self, pushdown: Pushdown) -> ReadPlan:
        """Resolve every partition's range now: the source's own starting and stopping offsets
        (stopping at the current end when it has none), narrowed by the pushdown. Offsets come from
        the same resolution the enumerator uses (`OffsetsInitializer.resolve`)."""
        source = self.source
        admin = source.admin()
        try:
            partitions = sorted(tp for tp in source._subscriber().partitions(admin)
                                if pushdown.reads_partition(tp[1]))
            starts = source.starting_offsets.resolve(admin, partitions, source.group_id)
            stops = source.stopping_offsets.resolve(admin, partitions, source.group_id, stopping=True)
            if pushdown.timestamp_from is not None and pushdown.timestamp_from > 0:
                first = OffsetsInitializer.timestamp(pushdown.timestamp_from).resolve(admin, partitions)
                starts = {tp: max(starts[tp], first[tp]) for tp in partitions}
            if pushdown.timestamp_until is not None and self.max_out_of_orderness_ms is not None:
                # Past the first record at or after until + max_out_of_orderness_ms, every record's
                # timestamp is at least `until`: nothing after it can match.
                bound = max(0, pushdown.timestamp_until + self.max_out_of_orderness_ms)
                last = OffsetsInitializer.timestamp(bound).resolve(admin, partitions, stopping=True)
                stops = {tp: min(stops[tp], last[tp]) for tp in partitions}
        finally:
            admin.close()
        ranges = {}
        for tp in partitions:
            start, stop = starts[tp], stops[tp]
            if pushdown.offset_from is not None:
                start = max(start, pushdown.offset_from)
            if pushdown.offset_until is not None:
                stop = min(stop, pushdown.offset_until)
            if start < stop:
                ranges[tp] = (start, stop)
        return ReadPlan(ranges)

    def read_source(self, plan: ReadPlan, columns: Sequence[str]) -> KafkaSource:
        """The bounded source that reads `plan`, building only `columns`: no headers, no key or value
        bytes, no value field that is not among them. It commits nothing to a consumer group."""
        if self.unnest_value:
            wanted = [name for name in self.value_fields if name in columns]
            value_format = _narrowed(self.source.value_format, wanted) if wanted else Binary()
        else:
            wanted = ["value"] if "value" in columns else []
            value_format = self.source.value_format if wanted else Binary()
        arguments = dict(self.arguments, topics=None, topic_pattern=None, partitions=sorted(plan.ranges),
                         group_id=None,
                         starting_offsets=OffsetsInitializer.offsets({tp: r[0] for tp, r in plan.ranges.items()}),
                         stopping_offsets=OffsetsInitializer.offsets({tp: r[1] for tp, r in plan.ranges.items()}),
                         include_headers=self.source.include_headers and "headers" in columns,
                         key_format=self.source.key_format if "key" in columns else Binary(),
                         value_format=value_format)
        return _ProjectedSource(**arguments, include_key="key" in columns, include_value=bool(wanted))

    def frame(self, batch: pa.RecordBatch, columns: Sequence[str]) -> pl.DataFrame:
        """The scan's columns `columns` of a batch read by `read_source`."""
        fields: dict[str, pa.Array] = {}
        if any(name in self.value_fields for name in columns):
            value = batch.column("value")  # flatten() makes a null value's fields null
            fields = {child.name: array for child, array in zip(value.type, value.flatten())}
        arrays = {}
        for name in columns:
            if name == "topic":
                arrays[name] = batch.column("topic").cast(pa.string())
            else:
                arrays[name] = fields[name] if name in self.value_fields else batch.column(name)
        table = pa.Table.from_batches([pa.RecordBatch.from_arrays(
            list(arrays.values()), schema=pa.schema([self.schema.field(n) for n in columns]))])
        return pl.from_arrow(table)

    def read(self, with_columns: Optional[list[str]], predicate: Optional[pl.Expr],
             n_rows: Optional[int], batch_size: Optional[int]) -> Iterator[pl.DataFrame]:
        """Polars' IO-plugin callback: plan the read when the query runs, then yield frames."""
        columns = list(with_columns) if with_columns is not None else self.schema.names
        plan = self.plan(pushdown_of(predicate))
        if not plan.ranges or n_rows == 0:
            self._report(plan, None)
            yield pl.from_arrow(pa.schema([self.schema.field(n) for n in columns]).empty_table())
            return
        source = self.read_source(plan, columns)
        parallelism = self.parallelism or min(default_parallelism(), len(plan.ranges))
        left = n_rows
        with source.open(parallelism=parallelism) as stream:
            try:
                for batch in stream:
                    frame = self.frame(batch, columns)
                    if predicate is not None:
                        frame = frame.filter(predicate)
                    if left is not None:
                        frame = frame.head(left)
                        left -= frame.height
                    yield frame
                    if left == 0:
                        break
            finally:
                self._report(plan, stream.metrics())

    def _report(self, plan: ReadPlan, metrics: Optional[dict[str, Any]]) -> None:
        if self.on_read is not None:
            report = dict(metrics or {"records": 0, "bytes": 0})
            report["ranges"] = dict(plan.ranges)
            self.on_read(report)


def scan_kafka(bootstrap_servers: str, topics: Optional[Sequence[str]] = None,
               topic_pattern: Optional[str] = None,
               partitions: Optional[Iterable[tuple[str, int]]] = None,
               group_id: Optional[str] = None,
               starting_offsets: OffsetsInitializer = OffsetsInitializer.earliest(),
               stopping_offsets: Optional[OffsetsInitializer] = None,
               value_format: FormatLike = Binary(), key_format: FormatLike = Binary(),
               include_headers: bool = False,
               properties: Optional[Mapping[str, Any]] = None,
               batch_limits: BatchLimits = BatchLimits(),
               request_timeout_s: float = 15.0,
               broker_timeout_ms: int = 60000,
               *, max_out_of_orderness_ms: Optional[int] = None,
               unnest_value: bool = False,
               parallelism: Optional[int] = None,
               on_read: Optional[Callable[[dict[str, Any]], None]] = None) -> pl.LazyFrame:
    """A Kafka topic as a Polars LazyFrame that reads only what each query needs.

    The arguments up to `broker_timeout_ms` mean what they mean for `KafkaSource`; `stopping_offsets`
    None (the default) stops every partition at its end as seen when a query starts (the same as
    `OffsetsInitializer.latest()`). Each `collect()` plans its own read: filters on `timestamp`,
    `partition` and `offset` narrow the offsets read, columns not selected are not built, and a row
    limit stops the read early; the filter is always applied to the rows read, so the result is
    exact. `group_id` only serves `OffsetsInitializer.committed()`: a query commits nothing.

    `max_out_of_orderness_ms`: how far a record's timestamp may lie before the largest timestamp
    earlier in its partition (0 for topics with `LogAppendTime`). When given, an upper bound on
    `timestamp` also stops each partition early, at the first record at or after the bound plus
    this; when None, only lower bounds move the read (timestamps may be in any order).
    `unnest_value`: the value's struct fields (e.g. of `Json(schema=...)`) become columns of their
    own, and a query decodes only those it uses. `parallelism`: readers per query (default: one
    per partition read, at most `default_parallelism()`). `on_read`: called after each query's
    read with the stream's `metrics()` (`records` is the records fetched) and `ranges`, the
    `(start, stop)` offsets read per `(topic, partition)`.

    The columns are `KafkaSource`'s, with `topic` as a string.
    """
    max_out_of_orderness_ms = check_int("max_out_of_orderness_ms", max_out_of_orderness_ms, minimum=0,
                                        optional=True)
    if parallelism is not None:
        check_int("parallelism", parallelism, minimum=1)
    check_bool("unnest_value", unnest_value)
    if on_read is not None and not callable(on_read):
        raise ConfigError(f"on_read must be callable or None, not {on_read!r}")
    arguments = dict(bootstrap_servers=bootstrap_servers, topics=topics, topic_pattern=topic_pattern,
                     partitions=partitions, group_id=group_id, starting_offsets=starting_offsets,
                     stopping_offsets=stopping_offsets or OffsetsInitializer.latest(),
                     value_format=value_format, key_format=key_format, include_headers=include_headers,
                     properties=properties, batch_limits=batch_limits, request_timeout_s=request_timeout_s,
                     broker_timeout_ms=broker_timeout_ms)
    scan = _Scan(arguments, max_out_of_orderness_ms, unnest_value, parallelism, on_read)
    source = scan.source
    what = (f"topics {', '.join(source.topics)}" if source.topics is not None else
            f"pattern {topic_pattern}" if topic_pattern is not None else "partitions "
            + ", ".join(f"{t}[{p}]" for t, p in sorted(source.partitions or [])))
    return register_io_source(scan.read, schema=scan.polars_schema, is_pure=False,
                              explain_name="fastsource.scan_kafka",
                              explain_detail=f"{what} on {bootstrap_servers}")
