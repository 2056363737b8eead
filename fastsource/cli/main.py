"""The `fastsource` command line: reading topics to files or the console, the local broker, the demo."""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence

from fastsource.errors import ConfigError, FastsourceError


def _broker(args: argparse.Namespace) -> int:
    from fastsource.broker import LocalBroker

    broker = LocalBroker(port=args.port, data_dir=getattr(args, "data_dir", None))
    if args.action == "start":
        print(broker.start(timeout=args.timeout))
    elif args.action == "stop":
        print(f"stopped {broker.address}" if broker.stop() else f"no broker running on port {args.port}")
    else:
        print(broker.status())
    return 0


def _bench(args: argparse.Namespace) -> int:
    if "--ray" in args.extra:
        from fastsource.benchmark.ray_bench import main as ray_bench_main

        ray_bench_main([a for a in args.extra if a != "--ray"], quick_default=True)
        return 0
    from fastsource.benchmark.suite import main as bench_main

    bench_main(args.extra, quick_default=True)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from fastsource.cli.demo import run_demo

    run_demo(messages=args.messages, partitions=args.partitions, port=args.port,
             bootstrap=args.bootstrap)
    return 0


def _format(name: str, schema_file: Optional[str]):
    from fastsource import formats

    if name == "binary":
        return formats.Binary()
    if name == "string":
        return formats.String()
    if name == "json":
        schema = None
        if schema_file:
            import pyarrow as pa

            try:
                with open(schema_file, "rb") as f:
                    schema = pa.ipc.read_schema(pa.py_buffer(f.read()))
            except (OSError, pa.ArrowInvalid) as exc:
                raise ConfigError(f"cannot read Arrow schema file {schema_file}: {exc}") from exc
        return formats.Json(schema)
    raise ConfigError(f"unknown format {name!r}")


def _properties(items: Sequence[str]) -> dict[str, str]:
    result = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ConfigError(f"bad -X {item!r}: expected property=value")
        result[name] = value
    return result


def _output_kind(args: argparse.Namespace) -> str:
    if args.format:
        return args.format
    if args.output is None:
        return "console"
    suffix = args.output.rsplit(".", 1)[-1].lower() if "." in args.output else ""
    return {"parquet": "parquet", "arrow": "arrow", "arrows": "arrow", "feather": "arrow"}.get(suffix, "dataset")


def _read(args: argparse.Namespace) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    import fastsource as fs
    from fastsource.cli.progress import Progress
    from fastsource.cli.specs import starting_offsets, stopping_offsets

    topics = args.topic or []
    kind = _output_kind(args)
    checkpoint_dir = args.checkpoint_dir
    if kind == "dataset" and checkpoint_dir is None:
        checkpoint_dir = str(Path(args.output) / "_checkpoints")
    if kind in ("parquet", "arrow") and args.to == "follow":
        raise ConfigError(f"--to follow never ends; write {kind} output with --to latest|time|offsets, "
                          "or use a dataset directory")
    source = fs.KafkaSource(
        args.bootstrap, topics=topics or None, topic_pattern=args.pattern, group_id=args.group_id,
        starting_offsets=starting_offsets(args.from_, topics),
        stopping_offsets=stopping_offsets(args.to, topics),
        key_format=_format(args.key_format, None), value_format=_format(args.value_format, args.schema),
        include_headers=args.headers, properties=_properties(args.property),
        partition_discovery_interval_ms=10_000 if args.to == "follow" else None)
    progress = Progress(enabled=None if args.progress is None else args.progress)
    written = 0
    parallelism = args.parallelism if args.parallelism is not None else fs.default_parallelism()
    if source.bounded:
        source.min_splits = parallelism  # offset ranges: every reader has work
    with source.open(parallelism=parallelism, checkpoint_dir=checkpoint_dir) as stream:
        writer: Any = None
        tmp: Optional[Path] = None
        sink = None
        if kind == "dataset":
            sink = stream.attach(fs.ParquetDatasetSink(args.output))
        elif kind in ("parquet", "arrow"):
            target = Path(args.output)
            tmp = target.with_name(f".{target.name}.tmp")
            writer = (pq.ParquetWriter(tmp, stream.schema, compression="zstd") if kind == "parquet"
                      else pa.ipc.new_file(tmp, stream.schema))
        last_checkpoint = time.monotonic()
        unsaved = cut = False
        try:
            while not stream.ended and (args.limit is None or written < args.limit):
                batch = stream.poll(0.2)
                if batch is not None:
                    if args.limit is not None and written + batch.num_rows > args.limit:
                        # the rest of this batch is beyond what a checkpoint could now cover
                        batch, cut = batch.slice(0, args.limit - written), True
                    written += batch.num_rows
                    unsaved = True
                    if sink is not None:
                        sink.write(batch)
                    elif writer is not None:
                        writer.write_batch(batch)
                    else:
                        _print_rows(batch)
                # on time, not only when batches come: a followed read that caught up still commits
                due = time.monotonic() - last_checkpoint >= args.checkpoint_interval
                if checkpoint_dir and unsaved and due and not cut:
                    stream.checkpoint()
                    last_checkpoint, unsaved = time.monotonic(), False
                progress.update(stream.metrics())
            if checkpoint_dir and not cut:
                stream.checkpoint()
            if writer is not None:
                writer.close()
                writer = None
                os.replace(tmp, args.output)
        finally:
            if writer is not None:
                writer.close()
                tmp.unlink(missing_ok=True)
        progress.finish(stream.metrics())
    if kind != "console":
        print(f"{written:,} records -> {args.output}", file=sys.stderr)
    return 0


def _print_rows(batch: Any) -> None:
    for row in batch.to_pylist():
        key, value = row["key"], row["value"]
        print(f"{row['topic']}[{row['partition']}]@{row['offset']} {row['timestamp']} "
              f"key={key!r} value={value!r}")


def build_parser() -> argparse.ArgumentParser:
    from fastsource.broker import DEFAULT_PORT

    parser = argparse.ArgumentParser(prog="fastsource", description="Read Apache Kafka into Apache Arrow.")
    parser.add_argument("--verbose", "-v", action="store_true", help="log details and show tracebacks")
    commands = parser.add_subparsers(dest="command", required=True)

    broker = commands.add_parser("broker", help="run a local Apache Kafka broker (KRaft, loopback)")
    actions = broker.add_subparsers(dest="action", required=True)
    start = actions.add_parser("start", help="start it (or report the one already running)")
    start.add_argument("--data-dir", help="where Kafka keeps its logs (default: under FASTSOURCE_HOME)")
    start.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for start-up")
    actions.add_parser("stop", help="stop it")
    actions.add_parser("status", help="tell whether it runs")
    for sub in actions.choices.values():
        sub.add_argument("--port", type=int, default=DEFAULT_PORT, help="PLAINTEXT port (controller: +1)")
    broker.set_defaults(func=_broker)

    read = commands.add_parser("read", help="read topics to Parquet / Arrow files or the console")
    read.add_argument("--bootstrap", "-b", required=True, help="bootstrap servers, host:port[,...]")
    subscription = read.add_mutually_exclusive_group(required=True)
    subscription.add_argument("--topic", "-t", action="append", help="topic to read (repeatable)")
    subscription.add_argument("--pattern", help="regular expression of topics to read")
    read.add_argument("--from", dest="from_", default="earliest",
                      help="earliest | latest | committed | ISO-8601 time | epoch ms | "
                           "[topic:]partition=offset,... (default earliest)")
    read.add_argument("--to", default="latest",
                      help="latest | follow | committed | time | [topic:]partition=offset,... "
                           "(default latest)")
    read.add_argument("--key-format", default="binary", choices=["binary", "string", "json"])
    read.add_argument("--value-format", default="binary", choices=["binary", "string", "json"])
    read.add_argument("--schema", help="Arrow IPC schema file for --value-format json")
    read.add_argument("--headers", action="store_true", help="include record headers")
    read.add_argument("--group-id", help="consumer group (committed offsets; commits on checkpoints)")
    read.add_argument("--output", "-o", help="file.parquet, file.arrow, or a dataset directory; "
                                             "default: print to the console")
    read.add_argument("--format", choices=["parquet", "dataset", "arrow", "console"],
                      help="output kind (default: from --output)")
    read.add_argument("--parallelism", "-p", type=int, default=None,
                      help="readers, each with its own consumer (default: two per CPU core, at most 8)")
    read.add_argument("--checkpoint-dir", help="checkpoints to resume from (dataset output keeps them "
                                               "in <output>/_checkpoints by default)")
    read.add_argument("--checkpoint-interval", type=float, default=5.0, help="seconds between checkpoints")
    read.add_argument("--limit", type=int, help="stop after this many records")
    read.add_argument("-X", dest="property", action="append", default=[],
                      help="librdkafka client property=value (repeatable)")
    read.add_argument("--progress", dest="progress", action="store_true", default=None,
                      help="show progress (default: when stderr is a terminal)")
    read.add_argument("--no-progress", dest="progress", action="store_false")
    read.set_defaults(func=_read)

    bench = commands.add_parser("bench", help="run the benchmark suite (quick by default; --full; --ray: the Ray suite)",
                                add_help=False)
    bench.set_defaults(func=_bench)

    demo = commands.add_parser("demo", help="local broker, sample topic, read into Arrow, summary")
    demo.add_argument("--messages", type=int, default=1_000_000)
    demo.add_argument("--partitions", type=int, default=4)
    demo.add_argument("--port", type=int, default=29192, help="port of the demo's own broker")
    demo.add_argument("--bootstrap", help="use this cluster instead of starting a local broker")
    demo.set_defaults(func=_demo)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "bench":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (FastsourceError, OSError) as exc:
        if args.verbose:
            raise
        print(f"fastsource: error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
