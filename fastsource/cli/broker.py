"""`fastsource broker start|stop|status`: the local Kafka broker for trying fastsource out."""
from __future__ import annotations

import argparse
import sys


def port(text: str) -> int:
    """An argparse type: a service port whose successor (the broker's controller, the registry's
    management interface) is a valid port too."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}") from None
    if not 1 <= value <= 65534:
        raise argparse.ArgumentTypeError(f"port {value} is out of range: the service needs it and "
                                         "port + 1 within 1-65535")
    return value


def run(args: argparse.Namespace) -> int:
    from fastsource.broker import LocalBroker, download_notice

    broker = LocalBroker(port=args.port, data_dir=getattr(args, "data_dir", None))
    if args.action == "start":
        notice = download_notice()
        if notice:
            print(notice, file=sys.stderr, flush=True)
        print(broker.start(timeout=args.timeout))
    elif args.action == "stop":
        stopped = broker.stop()
        print(f"stopped {broker.address}" if stopped else f"no broker running on port {args.port}")
        if args.wipe:
            broker.wipe()
            print(f"wiped its data and {broker.run_dir}")
    else:
        print(broker.status())
    return 0


def timeout(text: str) -> float:
    """An argparse type: a positive number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number of seconds {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"--timeout must be positive, not {text}")
    return value

