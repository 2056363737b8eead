"""`fastsource read`: topics to a Parquet or Arrow file, a Parquet dataset directory, standard output
(Arrow IPC stream) or the console (JSON lines or a table)."""
from __future__ import annotations

import argparse
import dataclasses
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, Optional

from fastsource.cli.common import bootstrap_servers, client_properties
from fastsource.errors import ConfigError

# What the CLI's outputs hold in memory per reader, whatever the topic size (docs/cli.md, "Memory"):
# librdkafka's prefetch queue and batches of at most BATCH_BYTES, of which a reader holds about four.
# The queue is bounded in bytes (2 MiB; librdkafka's default is 64 MiB, and it fills up whenever the
# output is slower than the fetch) and in records (20,000: librdkafka spends some hundred bytes on
# each queued record, so 2 MiB of 100-byte records cost ~10 MB), and a fetch response in 4 MiB (50 MiB
# by default; a response is held until its last record is read). Measured (bench/RESULTS.md): 8 MiB
# and no record bound cost ~40 MB per reader with 100-byte records.
CLI_PROPERTIES = {"queued.max.messages.kbytes": "2048", "queued.min.messages": "20000",
                  "fetch.max.bytes": str(4 << 20)}
BATCH_BYTES = 4 << 20
# Default readers, whatever the machine, so that the bound holds on large machines too. One output
# thread writes the records, and it is the slower side: 2 readers kept up with it (2 M records to
# Parquet: 9.2 s against 11.7 s with 4, and 70 MB less).
CLI_READERS = 2
# The Schema Registry of --key-format/--value-format avro|protobuf given no --schema-registry.
SCHEMA_REGISTRY_ENV = "FASTSOURCE_SCHEMA_REGISTRY"
# Parquet row groups: batches are gathered up to this many rows (or ROW_GROUP_BYTES) before a write.
ROW_GROUP_ROWS = 131072
ROW_GROUP_BYTES = 32 << 20

_KCAT_OFFSET = re.compile(r"^(beginning|end|stored|-?\d+|[se]@-?\d+)$")
_FILE_SUFFIXES = {"parquet": "parquet", "arrow": "arrow", "arrows": "arrow", "feather": "arrow",
                  "csv": "csv", "jsonl": "jsonl", "ndjson": "jsonl"}
_SUPPORTED = ("*.parquet, *.arrow (.arrows, .feather), *.csv, *.jsonl (.ndjson), a directory name "
              "without a suffix (a Parquet dataset), or - (an Arrow IPC stream)")


@dataclasses.dataclass
class Output:
    """Where records go: kind is console, stdout (Arrow IPC stream), parquet, arrow, csv, jsonl or
    dataset."""

    kind: str
    path: Optional[Path] = None
    state_dir: Optional[Path] = None   # a dataset's checkpoints and unpublished files


def dataset_state_dir(directory: Path) -> Path:
    """A dataset's state: a hidden sibling, so that readers walking the directory (Polars, DuckDB's
    `**`) see only published Parquet files; on the same file system, as publishing renames."""
    return directory.parent / f".{directory.name}.fastsource"


def plan_output(args: argparse.Namespace) -> Output:
    """Check the output before anything is read; ConfigError naming the user's path otherwise."""
    given, kind = args.output, args.format
    if given is None:
        if kind not in (None, "console"):
            raise ConfigError(f"--format {kind} needs an output path: add -o PATH")
        return Output("console")
    if given == "-":
        if kind not in (None, "arrow"):
            raise ConfigError(f"-o - writes an Arrow IPC stream to standard output; --format {kind} "
                              "needs a file path")
        if sys.stdout.isatty():
            raise ConfigError("-o - writes a binary Arrow IPC stream: pipe it to a program, or drop -o "
                              "to print records")
        return Output("stdout")
    if _KCAT_OFFSET.match(given):
        raise ConfigError(f"-o {given} names the output here, not an offset as in kcat: use --from "
                          "earliest|latest|committed|<time>|<partition>=<offset> (for a path of that "
                          f"name write -o ./{given})")
    if kind == "console":
        raise ConfigError("--format console prints records; drop -o")
    path = Path(given)
    if kind is None:
        kind = _output_kind(given, path)
    if not path.parent.is_dir():
        raise ConfigError(f"cannot write {given}: directory {path.parent} does not exist")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write {given}: directory {path.parent} is not writable")
    if kind == "dataset":
        state = dataset_state_dir(path.resolve())
        if path.exists() and not path.is_dir():
            raise ConfigError(f"{given} is a file; a dataset output is a directory (or write *.parquet "
                              "for one Parquet file)")
        if path.is_dir() and any(path.iterdir()) and not state.is_dir():
            raise ConfigError(f"{given} holds files but is not a fastsource dataset (no {state}); "
                              "choose a new or empty directory")
        if args.overwrite:
            raise ConfigError("--overwrite is for file outputs; a dataset directory is appended to "
                              "(a rerun continues where the last one stopped)")
        return Output("dataset", path, state)
    if path.is_dir():
        raise ConfigError(f"{given} is a directory; write a file path (or drop the .{path.suffix} "
                          "suffix for a dataset directory)" if path.suffix else f"{given} is a directory")
    if path.exists() and not args.overwrite:
        raise ConfigError(f"{given} exists; add --overwrite to replace it")
    if kind == "csv" and args.headers:
        raise ConfigError(f"{given}: CSV holds one value per cell, and --headers adds a list of "
                          "headers per record; write .jsonl, .parquet or .arrow to keep headers")
    if args.to == "follow":
        raise ConfigError(f"--to follow never ends; write {kind} output with --to latest|time|offsets, "
                          "a dataset directory, or -o - for a stream")
    return Output(kind, path)


def _output_kind(given: str, path: Path) -> str:
    """The output kind a path names by its suffix; an unknown suffix is refused, not guessed."""
    suffix = path.suffix.lower().lstrip(".")
    if not suffix or given.endswith(("/", os.sep)):
        return "dataset"
    if suffix in _FILE_SUFFIXES:
        return _FILE_SUFFIXES[suffix]
    if path.is_dir() and dataset_state_dir(path.resolve()).is_dir():
        return "dataset"  # a dataset written before under a name with a dot
    raise ConfigError(f"-o {given}: unknown output type .{path.suffix.lstrip('.')}; write {_SUPPORTED} "
                      "(or name the type with --format)")


def _format(name: str, schema_file: Optional[str], errors: str, registry: Optional[str] = None,
            message: Optional[str] = None):
    from fastsource import formats

    if name == "binary":
        return formats.Binary()
    if name == "string":
        return formats.String(errors=errors)
    if name == "avro":
        return formats.Avro(schema_registry=registry, errors=errors)
    if name == "protobuf":
        cls = message_class(message)
        return formats.Protobuf(message=cls, schema_registry=registry, errors=errors)
    schema = None
    if schema_file:
        import pyarrow as pa

        try:
            with open(schema_file, "rb") as f:
                schema = pa.ipc.read_schema(pa.py_buffer(f.read()))
        except (OSError, pa.ArrowInvalid) as exc:
            raise ConfigError(f"cannot read Arrow schema file {schema_file}: {exc}") from exc
    return formats.Json(schema, errors=errors)


def message_class(spec: str) -> Any:
    """The Protobuf message class named by `module:Class` (`Class` may be dotted for a nested message);
    the module is looked up as `python -m` would, the current directory first."""
    import importlib

    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ConfigError(f"bad --message {spec!r}: expected module:Class, e.g. events_pb2:Event")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        found: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"--message {spec}: cannot import module {module_name}: {exc}") from None
    except Exception as exc:  # the module itself failed (a protobuf version mismatch, ...)
        raise ConfigError(f"--message {spec}: importing {module_name} failed: "
                          f"{type(exc).__name__}: {exc}") from None
    for part in attribute.split("."):
        if not hasattr(found, part):
            raise ConfigError(f"--message {spec}: {found.__name__} has no {part!r}")
        found = getattr(found, part)
    if not (isinstance(found, type) and hasattr(found, "DESCRIPTOR")):
        raise ConfigError(f"--message {spec}: {attribute} is not a Protobuf message class")
    return found


def schema_registry_url(args: argparse.Namespace) -> Optional[str]:
    """--schema-registry, else $FASTSOURCE_SCHEMA_REGISTRY, else None."""
    return args.schema_registry or os.environ.get(SCHEMA_REGISTRY_ENV, "").strip() or None


def _partitions(args: argparse.Namespace) -> Optional[list[int]]:
    if not args.partition:
        return None
    if not args.topic:
        raise ConfigError("--partition needs -t/--topic (not --pattern)")
    chosen = []
    for item in ",".join(args.partition).split(","):
        if not item.strip().isdigit():
            raise ConfigError(f"bad --partition {item!r}: expected partition numbers, e.g. 0,2")
        chosen.append(int(item))
    return sorted(set(chosen))


def _check_options(args: argparse.Namespace) -> None:
    if args.schema and args.value_format != "json":
        raise ConfigError("--schema applies to --value-format json; add --value-format json")
    registry = schema_registry_url(args)
    for side, chosen in (("key", args.key_format), ("value", args.value_format)):
        if chosen == "avro" and registry is None:
            raise ConfigError(f"--{side}-format avro reads Confluent's wire format and needs a Schema "
                              f"Registry: give --schema-registry URL or set {SCHEMA_REGISTRY_ENV}")
        message = args.message if side == "value" else args.key_message
        option = "--message" if side == "value" else "--key-message"
        if chosen == "protobuf" and message is None:
            raise ConfigError(f"--{side}-format protobuf needs {option} module:Class (the generated "
                              "message class)")
        if chosen != "protobuf" and message is not None:
            raise ConfigError(f"{option} applies to --{side}-format protobuf")
    if args.schema_registry and "avro" not in (args.key_format, args.value_format) \
            and "protobuf" not in (args.key_format, args.value_format):
        raise ConfigError("--schema-registry applies to --key-format/--value-format avro or protobuf")
    if args.errors == "dead-letter":
        if args.dead_letter_output is None:
            raise ConfigError("--errors dead-letter needs --dead-letter-output FILE (JSON lines)")
        if args.key_format == "binary" and args.value_format == "binary":
            raise ConfigError("--errors dead-letter needs --key-format or --value-format "
                              "string|json|avro|protobuf (binary never fails to decode)")
        target = Path(args.dead_letter_output)
        if target.is_dir() or not target.parent.is_dir():
            raise ConfigError(f"cannot write dead letters to {args.dead_letter_output}: "
                              + ("it is a directory" if target.is_dir()
                                 else f"directory {target.parent} does not exist"))
    elif args.dead_letter_output is not None:
        raise ConfigError("--dead-letter-output needs --errors dead-letter")


def run(args: argparse.Namespace) -> int:
    """Read what the arguments say into the chosen output; returns the exit code."""
    import fastsource as fs
    from fastsource.cli.progress import Progress
    from fastsource.cli.specs import starting_offsets, stopping_offsets

    bootstrap = bootstrap_servers(args)
    _check_options(args)
    output = plan_output(args)
    topics = args.topic or []
    partitions = _partitions(args)
    errors = "dead_letter" if args.errors == "dead-letter" else "raise"
    registry = schema_registry_url(args)
    checkpoint_dir = args.checkpoint_dir
    if output.kind == "dataset" and checkpoint_dir is None:
        checkpoint_dir = str(output.state_dir / "checkpoints")
    source = fs.KafkaSource(
        bootstrap, topics=None if partitions or not topics else topics, topic_pattern=args.pattern,
        partitions=[(t, p) for t in topics for p in partitions] if partitions else None,
        group_id=args.group_id,
        starting_offsets=starting_offsets(args.from_, topics, args.reset),
        stopping_offsets=stopping_offsets(args.to, topics),
        key_format=_format(args.key_format, None, errors, registry, args.key_message),
        value_format=_format(args.value_format, args.schema, errors, registry, args.message),
        include_headers=args.headers, properties={**CLI_PROPERTIES, **client_properties(args.property)},
        batch_limits=fs.BatchLimits(max_rows=args.batch_size, max_bytes=BATCH_BYTES),
        partition_discovery_interval_ms=10_000 if args.to == "follow" else None,
        on_topic_recreated=args.on_topic_recreated)
    progress = Progress(enabled=None if args.progress is None else args.progress)
    parallelism = args.parallelism or CLI_READERS
    if output.kind == "dataset":
        output.state_dir.mkdir(exist_ok=True)
    with _dataset_lock(output), \
            source.open(parallelism=parallelism, checkpoint_dir=checkpoint_dir,
                        restore=args.restore) as stream:
        sink = _open_sink(output, stream, args)
        dead = None
        try:
            dead = _DeadLetters(args.dead_letter_output) if errors == "dead_letter" else None
            _copy(stream, sink, args, checkpoint_dir, progress, dead,
                  commit_on_write=output.kind in ("console", "stdout"))
            sink.finish()
        finally:
            sink.abort()
            if dead is not None:
                dead.close()
        if args.group_id:
            _commit(stream, args.group_id)
        progress.finish(stream.metrics())
    if output.kind != "console":
        where = "standard output" if output.kind == "stdout" else str(output.path)
        print(f"{progress.records:,} records -> {where}", file=sys.stderr)
    if dead is not None and dead.count:
        print(f"{dead.count:,} undecodable records -> {args.dead_letter_output}", file=sys.stderr)
    return 0


def _commit(stream: Any, group_id: str) -> None:
    """Commit what the read handed out (and wrote) to the group, as Kafka's console consumer does, so
    that `--from committed` resumes right after it; a failed commit is said, not hidden."""
    failed = stream.metrics()["commits_failed"]
    stream.commit()
    if stream.metrics()["commits_failed"] > failed:
        print(f"fastsource: warning: the offsets read could not be committed to group {group_id!r}; "
              "a later --from committed starts at the group's previous offsets (-v shows why)",
              file=sys.stderr)


def _dataset_lock(output: Output) -> Any:
    """A dataset directory serves one read at a time, whatever checkpoint directory each names: its
    state directory is locked until the read ends (`DirectoryLockedError` names the holder)."""
    import contextlib

    from fastsource.runtime.checkpoint import DirectoryLock

    if output.kind != "dataset":
        return contextlib.nullcontext()
    return DirectoryLock(output.state_dir, f"state of the dataset {output.path}")


def _copy(stream: Any, sink: "_Sink", args: argparse.Namespace, checkpoint_dir: Optional[str],
          progress: Any, dead: Optional["_DeadLetters"], commit_on_write: bool) -> None:
    """The read loop: batches to the sink, the limit applied exactly, and every interval a
    checkpoint (with a checkpoint directory) or, with a group and an output that delivers records as
    it writes them (the console, standard output), a commit of what was written."""
    limit = args.limit
    last_checkpoint = time.monotonic()
    unsaved = False
    periodic_commit = commit_on_write and args.group_id is not None
    while not stream.ended and (limit is None or progress.records < limit):
        batch = stream.poll(0.2)
        if dead is not None:
            dead.write(stream.dead_letters())
        if batch is not None:
            if limit is not None and progress.records + batch.num_rows > limit:
                keep = limit - progress.records
                if checkpoint_dir or args.group_id:
                    stream.take_back(batch.slice(keep))
                batch = batch.slice(0, keep)
            sink.write(batch)
            progress.wrote(batch)
            unsaved = True
        # on time, not only when batches come: a followed read that caught up still commits
        if unsaved and time.monotonic() - last_checkpoint >= args.checkpoint_interval:
            if checkpoint_dir:
                sink.flush()
                stream.checkpoint()
            elif periodic_commit:
                sink.flush()
                stream.commit()
            last_checkpoint, unsaved = time.monotonic(), False
        progress.update(stream.metrics())
    if checkpoint_dir:
        sink.flush()
        stream.checkpoint()


class _DeadLetters:
    """Undecodable records as JSON lines appended to a file (reruns add to it)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.count = 0
        self._file = open(path, "a", encoding="utf-8")

    def write(self, table: Any) -> None:
        from fastsource.cli.console import write_jsonl

        if table.num_rows:
            for batch in table.to_batches():
                write_jsonl(batch, self._file)
            self._file.flush()
            self.count += table.num_rows

    def close(self) -> None:
        self._file.close()


class _Sink:
    """One output: `write` batches, `flush` before a checkpoint, `finish` at the end; `abort` undoes
    what `finish` did not make final."""

    def write(self, batch: Any) -> None:
        raise NotImplementedError

    def flush(self) -> None:
        """Hand every batch written so far to the durable output (before a checkpoint)."""

    def finish(self) -> None:
        """The read is complete: make the output final."""

    def abort(self) -> None:
        """Undo whatever `finish` did not make final (idempotent, also after `finish`)."""


class _Console(_Sink):
    def __init__(self, args: argparse.Namespace) -> None:
        from fastsource.cli.console import RecordTable, write_jsonl

        style = args.console_format or ("table" if sys.stdout.isatty() else "jsonl")
        if style == "table":
            multiple = bool(args.pattern) or len(args.topic or []) > 1
            self._write = RecordTable(sys.stdout, multiple).write
        else:
            self._write = lambda batch: write_jsonl(batch, sys.stdout)

    def write(self, batch: Any) -> None:
        self._write(batch)

    def flush(self) -> None:
        sys.stdout.flush()


class _IpcStream(_Sink):
    def __init__(self, schema: Any) -> None:
        import pyarrow as pa

        self._writer = pa.ipc.new_stream(sys.stdout.buffer, schema)

    def write(self, batch: Any) -> None:
        self._writer.write_batch(batch)
        sys.stdout.buffer.flush()

    def finish(self) -> None:
        self._writer.close()
        sys.stdout.buffer.flush()


class _Gathered(_Sink):
    """Gathers batches into row groups of about ROW_GROUP_ROWS rows (one batch would make one small
    row group each) and hands them to `_put` as one table of the batches, uncopied; holds at most one
    row group."""

    def __init__(self) -> None:
        self._batches: list[Any] = []
        self._rows = self._bytes = 0

    def write(self, batch: Any) -> None:
        if batch.num_rows == 0:
            return
        self._batches.append(batch)
        self._rows += batch.num_rows
        self._bytes += batch.nbytes
        if self._rows >= ROW_GROUP_ROWS or self._bytes >= ROW_GROUP_BYTES:
            self.flush()

    def flush(self) -> None:
        if self._batches:
            import pyarrow as pa

            table = pa.Table.from_batches(self._batches)
            self._batches, self._rows, self._bytes = [], 0, 0
            self._put(table)

    def _put(self, table: Any) -> None:
        raise NotImplementedError


class _File(_Gathered):
    """A Parquet, Arrow IPC, CSV or JSON lines file, written to a hidden temporary file beside it and
    renamed into place only when the read completed. Parquet gets row groups of about
    ROW_GROUP_ROWS rows; the other kinds write each batch as it comes."""

    def __init__(self, kind: str, path: Path, schema: Any) -> None:
        super().__init__()
        self.path = path
        self.tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        self._gather = kind == "parquet"
        try:
            self._writer: Any = _open_writer(kind, self.tmp, schema)
        except OSError as exc:
            self.tmp.unlink(missing_ok=True)
            raise ConfigError(f"cannot write {path}: {exc}") from exc

    def write(self, batch: Any) -> None:
        if self._gather:
            super().write(batch)
        elif batch.num_rows:
            self._writer.write(batch)

    def _put(self, table: Any) -> None:
        self._writer.write(table)

    def finish(self) -> None:
        self.flush()
        self._writer.close()
        self._writer = None
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            self.tmp.unlink(missing_ok=True)


def _open_writer(kind: str, path: Path, schema: Any) -> Any:
    """A writer of `kind` at `path`: `write(batch or table)` and `close()`."""
    if kind == "parquet":
        return _ParquetWriter(path, schema)
    if kind == "arrow":
        return _IpcFileWriter(path, schema)
    if kind == "csv":
        return _CsvWriter(path, schema)
    return _JsonLinesWriter(path)


class _ParquetWriter:
    def __init__(self, path: Path, schema: Any) -> None:
        import pyarrow.parquet as pq

        self._writer = pq.ParquetWriter(path, schema, compression="zstd")

    def write(self, table: Any) -> None:
        self._writer.write_table(table, row_group_size=table.num_rows)  # one row group

    def close(self) -> None:
        self._writer.close()


class _IpcFileWriter:
    def __init__(self, path: Path, schema: Any) -> None:
        import pyarrow as pa

        self._writer = pa.ipc.new_file(path, schema)

    def write(self, batch: Any) -> None:
        self._writer.write(batch)

    def close(self) -> None:
        self._writer.close()


class _JsonLinesWriter:
    """JSON lines as the console writes them (`fastsource.cli.console`): one object per record,
    bytes as UTF-8 text or base64 under `key_base64`/`value_base64`, decoded JSON values nested."""

    def __init__(self, path: Path) -> None:
        self._file = open(path, "w", encoding="utf-8", newline="\n")

    def write(self, batch: Any) -> None:
        from fastsource.cli.console import write_jsonl

        write_jsonl(batch, self._file)

    def close(self) -> None:
        self._file.close()


class _CsvWriter:
    """CSV through pyarrow's writer, with a header line. CSV holds one text value per cell: struct
    columns (decoded JSON values) become one column per field (`value.id`, `value.user.name`), key and
    value bytes are written as UTF-8 text (bytes that are not UTF-8 fail the read, naming the
    record), and list or map columns are refused before anything is read."""

    def __init__(self, path: Path, schema: Any) -> None:
        import pyarrow as pa
        import pyarrow.csv as csv

        flat = _flat_schema(schema)
        nested = [f for f in flat if pa.types.is_nested(f.type)]
        if nested:
            raise ConfigError(f"CSV holds one value per cell, but column {nested[0].name} is a "
                              f"{nested[0].type}; write .jsonl, .parquet or .arrow for it")
        self._schema = pa.schema([pa.field(f.name, pa.string() if _is_bytes(f.type) else f.type)
                                  for f in flat])
        self._writer = csv.CSVWriter(path, self._schema)

    def write(self, batch: Any) -> None:
        import pyarrow as pa

        table = pa.Table.from_batches([batch])
        while any(pa.types.is_struct(t) for t in table.schema.types):
            table = table.flatten()
        columns = []
        for name, column in zip(table.column_names, table.columns):
            if _is_bytes(column.type):
                column = _utf8(column, name, table)
            columns.append(column)
        self._writer.write_table(pa.Table.from_arrays(columns, schema=self._schema))

    def close(self) -> None:
        self._writer.close()


def _flat_schema(schema: Any) -> list[Any]:
    """The fields of `schema` with struct fields replaced by their children, `parent.child`."""
    import pyarrow as pa

    flat = []
    for field in schema:
        if pa.types.is_struct(field.type):
            children = pa.schema([field.type.field(i) for i in range(field.type.num_fields)])
            flat.extend(child.with_name(f"{field.name}.{child.name}") for child in _flat_schema(children))
        else:
            flat.append(field)
    return flat


def _is_bytes(type_: Any) -> bool:
    import pyarrow as pa

    return pa.types.is_binary(type_) or pa.types.is_large_binary(type_)


def _utf8(column: Any, name: str, table: Any) -> Any:
    """A binary column as UTF-8 text; DecodeError naming the first record whose bytes are not."""
    import pyarrow as pa

    from fastsource.errors import DecodeError

    try:
        return column.cast(pa.string())
    except pa.ArrowInvalid:
        for row, value in enumerate(column.to_pylist()):
            try:
                value is None or value.decode("utf-8")
            except UnicodeDecodeError:
                topic, partition, offset = (table.column(c)[row].as_py()
                                            for c in ("topic", "partition", "offset"))
                raise DecodeError(f"the {name} of {topic}[{partition}] at offset {offset} is not UTF-8 "
                                  "text, which CSV cannot hold: write .jsonl (it keeps such bytes as "
                                  "base64), .parquet or .arrow instead", topic, partition, offset) from None
        raise


class _Dataset(_Gathered):
    def __init__(self, stream: Any, output: Output) -> None:
        import fastsource as fs

        super().__init__()
        self._sink = stream.attach(fs.ParquetDatasetSink(output.path, staging_dir=output.state_dir))

    def _put(self, table: Any) -> None:
        for batch in table.to_batches():
            self._sink.write(batch)


def _open_sink(output: Output, stream: Any, args: argparse.Namespace) -> _Sink:
    if output.kind == "console":
        return _Console(args)
    if output.kind == "stdout":
        return _IpcStream(stream.schema)
    if output.kind == "dataset":
        return _Dataset(stream, output)
    return _File(output.kind, output.path, stream.schema)
