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

# What the CLI's outputs hold in memory per reader, whatever the topic size (README, "Memory"):
# librdkafka's prefetch queue (its 64 MiB default per consumer fills up whenever the output is
# slower than the fetch) and batches of at most BATCH_BYTES, of which a reader holds about four.
CLI_PROPERTIES = {"queued.max.messages.kbytes": "8192"}
BATCH_BYTES = 4 << 20
# Default readers: the library's default (two per core), at most this many, so that the bound holds
# on large machines too; one output thread writes the records anyway.
CLI_MAX_READERS = 4
# Parquet row groups: batches are gathered up to this many rows (or ROW_GROUP_BYTES) before a write.
ROW_GROUP_ROWS = 131072
ROW_GROUP_BYTES = 32 << 20

_KCAT_OFFSET = re.compile(r"^(beginning|end|stored|-?\d+|[se]@-?\d+)$")
_FILE_SUFFIXES = {"parquet": "parquet", "arrow": "arrow", "arrows": "arrow", "feather": "arrow"}


@dataclasses.dataclass
class Output:
    """Where records go: kind is console, stdout (Arrow IPC stream), parquet, arrow or dataset."""

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
        kind = _FILE_SUFFIXES.get(path.suffix.lower().lstrip("."), "dataset")
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
    if kind in ("parquet", "arrow") and args.to == "follow":
        raise ConfigError(f"--to follow never ends; write {kind} output with --to latest|time|offsets, "
                          "a dataset directory, or -o - for a stream")
    return Output(kind, path)


def _format(name: str, schema_file: Optional[str], errors: str):
    from fastsource import formats

    if name == "binary":
        return formats.Binary()
    if name == "string":
        return formats.String(errors=errors)
    schema = None
    if schema_file:
        import pyarrow as pa

        try:
            with open(schema_file, "rb") as f:
                schema = pa.ipc.read_schema(pa.py_buffer(f.read()))
        except (OSError, pa.ArrowInvalid) as exc:
            raise ConfigError(f"cannot read Arrow schema file {schema_file}: {exc}") from exc
    return formats.Json(schema, errors=errors)


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
    if args.errors == "dead-letter":
        if args.dead_letter_output is None:
            raise ConfigError("--errors dead-letter needs --dead-letter-output FILE (JSON lines)")
        if args.key_format == "binary" and args.value_format == "binary":
            raise ConfigError("--errors dead-letter needs --key-format or --value-format string|json "
                              "(binary never fails to decode)")
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
    checkpoint_dir = args.checkpoint_dir
    if output.kind == "dataset" and checkpoint_dir is None:
        checkpoint_dir = str(output.state_dir / "checkpoints")
    source = fs.KafkaSource(
        bootstrap, topics=None if partitions or not topics else topics, topic_pattern=args.pattern,
        partitions=[(t, p) for t in topics for p in partitions] if partitions else None,
        group_id=args.group_id,
        starting_offsets=starting_offsets(args.from_, topics),
        stopping_offsets=stopping_offsets(args.to, topics),
        key_format=_format(args.key_format, None, errors),
        value_format=_format(args.value_format, args.schema, errors),
        include_headers=args.headers, properties={**CLI_PROPERTIES, **client_properties(args.property)},
        batch_limits=fs.BatchLimits(max_rows=args.batch_size, max_bytes=BATCH_BYTES),
        partition_discovery_interval_ms=10_000 if args.to == "follow" else None)
    progress = Progress(enabled=None if args.progress is None else args.progress)
    parallelism = args.parallelism or min(fs.default_parallelism(), CLI_MAX_READERS)
    if output.kind == "dataset":
        output.state_dir.mkdir(exist_ok=True)
    with source.open(parallelism=parallelism, checkpoint_dir=checkpoint_dir) as stream:
        sink = _open_sink(output, stream, args)
        dead = None
        try:
            dead = _DeadLetters(args.dead_letter_output) if errors == "dead_letter" else None
            written = _copy(stream, sink, args, checkpoint_dir, progress, dead)
            sink.finish()
        finally:
            sink.abort()
            if dead is not None:
                dead.close()
        progress.finish(stream.metrics())
    if output.kind != "console":
        where = "standard output" if output.kind == "stdout" else str(output.path)
        print(f"{written:,} records -> {where}", file=sys.stderr)
    if dead is not None and dead.count:
        print(f"{dead.count:,} undecodable records -> {args.dead_letter_output}", file=sys.stderr)
    return 0


def _copy(stream: Any, sink: "_Sink", args: argparse.Namespace, checkpoint_dir: Optional[str],
          progress: Any, dead: Optional["_DeadLetters"]) -> int:
    """The read loop: batches to the sink, checkpoints every interval, the limit applied exactly."""
    limit = args.limit
    written = 0
    last_checkpoint = time.monotonic()
    unsaved = False
    while not stream.ended and (limit is None or written < limit):
        batch = stream.poll(0.2)
        if dead is not None:
            dead.write(stream.dead_letters())
        if batch is not None:
            if limit is not None and written + batch.num_rows > limit:
                keep = limit - written
                if checkpoint_dir:
                    stream.take_back(batch.slice(keep))
                batch = batch.slice(0, keep)
            written += batch.num_rows
            unsaved = True
            sink.write(batch)
        # on time, not only when batches come: a followed read that caught up still commits
        due = time.monotonic() - last_checkpoint >= args.checkpoint_interval
        if checkpoint_dir and unsaved and due:
            sink.flush()
            stream.checkpoint()
            last_checkpoint, unsaved = time.monotonic(), False
        progress.update(stream.metrics())
    if checkpoint_dir:
        sink.flush()
        stream.checkpoint()
    return written


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
    row group each) and hands them to `_put`; holds at most one row group."""

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

            table = pa.Table.from_batches(self._batches).combine_chunks()
            self._batches, self._rows, self._bytes = [], 0, 0
            self._put(table)

    def _put(self, table: Any) -> None:
        raise NotImplementedError


class _File(_Gathered):
    """A Parquet or Arrow IPC file, written to a hidden temporary file beside it and renamed into
    place only when the read completed."""

    def __init__(self, kind: str, path: Path, schema: Any) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        super().__init__()
        self.path = path
        self.tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            self._writer: Any = (pq.ParquetWriter(self.tmp, schema, compression="zstd")
                                 if kind == "parquet" else pa.ipc.new_file(self.tmp, schema))
        except OSError as exc:
            self.tmp.unlink(missing_ok=True)
            raise ConfigError(f"cannot write {path}: {exc}") from exc
        self._parquet = kind == "parquet"

    def _put(self, table: Any) -> None:
        if self._parquet:
            self._writer.write_table(table, row_group_size=table.num_rows)
        else:
            self._writer.write_table(table)

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
