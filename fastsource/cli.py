"""The `fastsource` command line: the local broker and the demo."""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Optional, Sequence

from fastsource.errors import FastsourceError


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


def _demo(args: argparse.Namespace) -> int:
    from fastsource.demo import run_demo

    run_demo(messages=args.messages, partitions=args.partitions, port=args.port,
             bootstrap=args.bootstrap)
    return 0


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

    demo = commands.add_parser("demo", help="local broker, sample topic, read into Arrow, summary")
    demo.add_argument("--messages", type=int, default=1_000_000)
    demo.add_argument("--partitions", type=int, default=4)
    demo.add_argument("--port", type=int, default=29192, help="port of the demo's own broker")
    demo.add_argument("--bootstrap", help="use this cluster instead of starting a local broker")
    demo.set_defaults(func=_demo)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (FastsourceError, OSError) as exc:
        if args.verbose:
            raise
        print(f"fastsource: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
