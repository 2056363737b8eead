"""The `fastsource` command line: reading topics to files or the console, metadata (topics, lag),
the local broker and schema registry, the demo and the benchmark. Each command lives in its own module."""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from typing import Optional, Sequence

from fastsource.cli.common import BOOTSTRAP_ENV, Parser, add_bootstrap, add_client_properties
from fastsource.errors import FastsourceError


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


def _read(args: argparse.Namespace) -> int:
    from fastsource.cli.read import run

    return run(args)


def _topics(args: argparse.Namespace) -> int:
    from fastsource.cli.topics import topics

    return topics(args)


def _lag(args: argparse.Namespace) -> int:
    from fastsource.cli.topics import lag

    return lag(args)


def _broker(args: argparse.Namespace) -> int:
    from fastsource.cli.broker import run

    return run(args)


def _registry(args: argparse.Namespace) -> int:
    from fastsource.cli.broker import run_service
    from fastsource.registry import LocalRegistry, download_notice

    registry = LocalRegistry(port=args.port)
    return run_service(args, registry, registry.url, download_notice(), "registry", str(registry.run_dir))


def _service(commands: argparse._SubParsersAction, name: str, help: str, func, port_help: str,
             default_port: int, wipe_help: str, verbose: argparse.ArgumentParser,
             start_timeout: float = 120.0) -> argparse._SubParsersAction:
    """`fastsource NAME start|stop|status [--port P]` for a local service; returns its actions."""
    from fastsource.cli.broker import port, timeout

    service = commands.add_parser(name, parents=[verbose], help=help)
    actions = service.add_subparsers(dest="action", required=True, metavar="ACTION")
    start = actions.add_parser("start", parents=[verbose], help="start it (or report the one already running)")
    start.add_argument("--timeout", type=timeout, default=start_timeout,
                       help=f"seconds to wait for start-up (default {start_timeout:.0f})")
    stop = actions.add_parser("stop", parents=[verbose], help="stop it")
    stop.add_argument("--wipe", action="store_true", help=wipe_help)
    actions.add_parser("status", parents=[verbose], help="tell whether it runs")
    for sub in actions.choices.values():
        sub.add_argument("--port", type=port, default=default_port, help=port_help)
    service.set_defaults(func=func)
    return actions


def _count(text: str) -> int:
    """An argparse type: a non-negative whole number."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


def _positive(text: str) -> int:
    value = _count(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    from fastsource import __version__
    from fastsource.broker import DEFAULT_PORT, KAFKA_VERSION, SECURITY_MODES
    from fastsource.cli.broker import kafka_version, port, timeout
    from fastsource.registry import DEFAULT_PORT as REGISTRY_PORT, START_TIMEOUT_S as REGISTRY_START_TIMEOUT

    parser = Parser(prog="fastsource", description="Read Apache Kafka into Apache Arrow.")
    parser.add_argument("--version", action="version", version=f"fastsource {__version__}")
    parser.add_argument("--verbose", "-v", action="store_true", help="log details and show tracebacks")
    # -v after the command too; SUPPRESS keeps a subcommand from resetting a -v given before it
    verbose = Parser(add_help=False)
    verbose.add_argument("--verbose", "-v", action="store_true", default=argparse.SUPPRESS,
                         help="log details and show tracebacks")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    read = commands.add_parser("read", parents=[verbose],
                               help="read topics to Parquet / Arrow files, a dataset, or the console")
    add_bootstrap(read)
    subscription = read.add_mutually_exclusive_group(required=True)
    subscription.add_argument("--topic", "-t", action="append", help="topic to read (repeatable)")
    subscription.add_argument("--pattern", help="regular expression of topics to read")
    read.add_argument("--partition", action="append", metavar="N[,N...]",
                      help="read only these partitions of the -t topics (repeatable)")
    read.add_argument("--from", dest="from_", default="earliest", metavar="SPEC",
                      help="earliest | latest | committed | ISO-8601 time | epoch ms | "
                           "[topic:]partition=offset,... (default earliest)")
    read.add_argument("--reset", choices=["earliest", "latest"],
                      help="with --from committed: where partitions without a committed offset of "
                           "the group start (default: such a partition is an error)")
    read.add_argument("--from-beginning", dest="from_", action="store_const", const="earliest",
                      help="kafka-console-consumer's spelling of --from earliest")
    read.add_argument("--to", default="latest", metavar="SPEC",
                      help="latest | follow | committed | time | [topic:]partition=offset,... "
                           "(default latest)")
    formats = ["binary", "string", "json", "avro", "protobuf"]
    read.add_argument("--key-format", default="binary", choices=formats)
    read.add_argument("--value-format", default="binary", choices=formats,
                      help="avro: Confluent's wire format, schemas from --schema-registry; protobuf: "
                           "--message's class (Confluent's wire format with a registry, else bare)")
    read.add_argument("--schema", help="Arrow IPC schema file for --value-format json")
    read.add_argument("--schema-registry", metavar="URL",
                      help="Confluent-compatible Schema Registry for avro and protobuf (default: "
                           "$FASTSOURCE_SCHEMA_REGISTRY)")
    read.add_argument("--message", metavar="MODULE:CLASS",
                      help="generated Protobuf message class of --value-format protobuf")
    read.add_argument("--key-message", metavar="MODULE:CLASS",
                      help="generated Protobuf message class of --key-format protobuf")
    read.add_argument("--errors", default="fail", choices=["fail", "dead-letter"],
                      help="an undecodable key or value fails the read (default), or goes to "
                           "--dead-letter-output and the read goes on")
    read.add_argument("--dead-letter-output", metavar="FILE",
                      help="JSON lines file that undecodable records are appended to")
    read.add_argument("--headers", action="store_true", help="include record headers")
    read.add_argument("--group-id", help="consumer group: --from committed starts at its offsets, and "
                                         "what the read wrote is committed to it")
    read.add_argument("--output", "-o", metavar="PATH",
                      help="file.parquet, file.arrow, file.csv, file.jsonl, a dataset directory, or - "
                           "for an Arrow IPC stream on standard output; default: print records")
    read.add_argument("--format", choices=["parquet", "dataset", "arrow", "csv", "jsonl", "console"],
                      help="output kind (default: from --output)")
    read.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    read.add_argument("--console-format", choices=["table", "jsonl"],
                      help="printed records: a table (default on a terminal) or JSON lines (default "
                           "otherwise)")
    read.add_argument("--parallelism", "-p", type=_positive, default=None, metavar="N",
                      help="readers, each with its own consumer (default 2)")
    read.add_argument("--batch-size", type=_positive, default=65536, metavar="ROWS",
                      help="most records per batch (default 65536; batches also end at 4 MiB)")
    read.add_argument("--checkpoint-dir", help="checkpoints to resume from (a dataset output keeps "
                                               "them in .<name>.fastsource/ beside it)")
    read.add_argument("--checkpoint-interval", type=float, default=5.0, help="seconds between checkpoints")
    read.add_argument("--restore", default="latest", choices=["latest", "latest-intact"],
                      help="resume from the newest checkpoint (default; a damaged one is an error) or "
                           "from the newest intact one (damaged newer ones are named and skipped)")
    read.add_argument("--on-topic-recreated", default="fail", choices=["fail", "earliest"],
                      help="a topic deleted and created again since the checkpoint fails the read "
                           "(default) or is read from its earliest offset")
    read.add_argument("--limit", "-c", "--max-messages", type=_count, metavar="N",
                      help="stop after N records")
    add_client_properties(read)
    read.add_argument("--progress", dest="progress", action="store_true", default=None,
                      help="show progress (default: when stderr is a terminal)")
    read.add_argument("--no-progress", dest="progress", action="store_false")
    read.set_defaults(func=_read)

    topics = commands.add_parser("topics", parents=[verbose],
                                 help="topics with partitions and records; per partition with -t")
    add_bootstrap(topics)
    topics.add_argument("--topic", "-t", action="append",
                        help="show this topic's partitions: offsets, records, timestamps (repeatable)")
    lag = commands.add_parser("lag", parents=[verbose],
                              help="a consumer group's committed offsets, high watermarks and lag")
    add_bootstrap(lag)
    lag.add_argument("--group", "-g", required=True, help="consumer group id")
    lag.add_argument("--topic", "-t", action="append",
                     help="every partition of this topic, committed or not (repeatable)")
    for sub, func in ((topics, _topics), (lag, _lag)):
        sub.add_argument("--console-format", choices=["table", "jsonl"],
                         help="a table (default on a terminal) or JSON lines (default otherwise)")
        sub.add_argument("--timeout", type=timeout, default=15.0, help="seconds to wait for the cluster")
        add_client_properties(sub)
        sub.set_defaults(func=func)

    broker = _service(commands, "broker", "run a local Apache Kafka broker (KRaft, loopback)", _broker,
                      f"PLAINTEXT port (default {DEFAULT_PORT}; controller: port + 1)", DEFAULT_PORT,
                      "also delete its data and run directory (pid, log, properties)", verbose)
    start = broker.choices["start"]
    start.add_argument("--data-dir", help="where Kafka keeps its logs (default: under FASTSOURCE_HOME)")
    start.add_argument("--kafka-version", type=kafka_version, default=KAFKA_VERSION,
                       help=f"Apache Kafka release, 3.9.0 or later (default {KAFKA_VERSION})")
    start.add_argument("--security", choices=SECURITY_MODES,
                       help="add a secured listener on port + 2 (SCRAM-SHA-512 users, a fresh CA and "
                            "certificates); its client properties are printed as a JSON line last")
    _service(commands, "registry", "run a local Confluent-compatible Schema Registry (Apicurio, loopback)",
             _registry, f"HTTP port (default {REGISTRY_PORT}; management: port + 1)", REGISTRY_PORT,
             "also delete its run directory (pid, log)", verbose, REGISTRY_START_TIMEOUT)

    bench = commands.add_parser("bench", help="run the benchmark suite (quick by default; --full; --peers; --ray: the Ray suite)",
                                add_help=False)
    bench.set_defaults(func=_bench)

    demo = commands.add_parser("demo", parents=[verbose],
                               help="local broker, sample topic, read into Arrow, summary")
    demo.add_argument("--messages", type=_positive, default=1_000_000)
    demo.add_argument("--partitions", type=_positive, default=4)
    demo.add_argument("--port", type=port, default=29192, help="port of the demo's own broker")
    demo.add_argument("--bootstrap", help="use this cluster instead of starting a local broker")
    demo.set_defaults(func=_demo)
    parser.epilog = (f"-b defaults to ${BOOTSTRAP_ENV}. Errors are one line on stderr with exit code 2 "
                     "(-v shows the traceback).")
    return parser


def _quiet_broken_pipe() -> None:
    """Standard output's reader went away (`| head`): send what is left to /dev/null, so that the
    interpreter's final flush does not complain either."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM ends a read like Ctrl-C does: outputs are closed or removed (no temporary file stays),
    then the process exits with 143, as killed by SIGTERM."""
    raise SystemExit(128 + signum)


def main(argv: Optional[Sequence[str]] = None) -> int:
    signal.signal(signal.SIGTERM, _on_sigterm)
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "bench":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        code = args.func(args)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        # the reader of our output has what it wanted, like kcat ... | head: end quietly
        _quiet_broken_pipe()
        return 0
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
