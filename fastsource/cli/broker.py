"""`fastsource broker start|stop|status`: the local Kafka broker for trying fastsource out; and what
the local services' commands (broker, schema registry) share."""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Optional


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

    if args.action == "start":
        broker = LocalBroker(port=args.port, data_dir=args.data_dir, kafka_version=args.kafka_version,
                             security=args.security)
        status = run_service(args, broker, broker.address, download_notice(args.kafka_version), "broker",
                             f"its data and {broker.run_dir}")
        if args.security is not None:
            print(json.dumps(broker.client_properties()))
        return status
    broker = LocalBroker(port=args.port, data_dir=getattr(args, "data_dir", None))
    return run_service(args, broker, broker.address, None, "broker", f"its data and {broker.run_dir}")


def run_service(args: argparse.Namespace, service: Any, address: str, notice: Optional[str], what: str,
                wiped: str) -> int:
    """start|stop [--wipe]|status of a local service (the broker, the schema registry): `start` prints
    `notice` (a first download) on stderr, then the address as the last line of stdout."""
    if args.action == "start":
        if notice:
            print(notice, file=sys.stderr, flush=True)
        print(service.start(timeout=args.timeout))
    elif args.action == "stop":
        stopped = service.stop()
        print(f"stopped {address}" if stopped else f"no {what} running on port {args.port}")
        if args.wipe:
            service.wipe()
            print(f"wiped {wiped}")
    else:
        print(service.status())
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
