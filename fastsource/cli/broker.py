"""`fastsource broker start|stop|status`: the local Kafka broker for trying fastsource out."""
from __future__ import annotations

import argparse
import json
import sys


def port(text: str) -> int:
    """An argparse type: a broker port whose successor (the controller's) is a valid port too."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}") from None
    if not 1 <= value <= 65534:
        raise argparse.ArgumentTypeError(f"port {value} is out of range: the broker needs it and "
                                         "port + 1 (its controller) within 1-65535")
    return value


def run(args: argparse.Namespace) -> int:
    from fastsource.broker import LocalBroker, download_notice

    if args.action == "start":
        broker = LocalBroker(port=args.port, data_dir=args.data_dir, kafka_version=args.kafka_version,
                             security=args.security)
        notice = download_notice(args.kafka_version)
        if notice:
            print(notice, file=sys.stderr, flush=True)
        print(broker.start(timeout=args.timeout))
        if args.security is not None:
            print(json.dumps(broker.client_properties()))
        return 0
    broker = LocalBroker(port=args.port)
    if args.action == "stop":
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



def kafka_version(text: str) -> str:
    """An argparse type: an Apache Kafka release the launcher can run."""
    from fastsource.broker import check_kafka_version
    from fastsource.errors import BrokerError

    try:
        return check_kafka_version(text)
    except BrokerError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
