"""`fastsource registry start|stop|status`: the local Schema Registry for trying Avro and Protobuf out."""
from __future__ import annotations

import argparse
import sys


def run(args: argparse.Namespace) -> int:
    from fastsource.registry import LocalRegistry, download_notice

    registry = LocalRegistry(port=args.port)
    if args.action == "start":
        notice = download_notice()
        if notice:
            print(notice, file=sys.stderr, flush=True)
        print(registry.start(timeout=args.timeout))
    elif args.action == "stop":
        stopped = registry.stop()
        print(f"stopped {registry.url}" if stopped else f"no registry running on port {args.port}")
        if args.wipe:
            registry.wipe()
            print(f"wiped {registry.run_dir}")
    else:
        print(registry.status())
    return 0
