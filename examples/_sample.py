"""Shared set-up of the examples: the bootstrap address and a small sample topic of JSON events."""
import os
import sys

from fastsource.cli.demo import produce_sample


def bootstrap() -> str:
    """First argument, else FASTSOURCE_BOOTSTRAP, else the default local broker
    (`fastsource broker start`)."""
    if len(sys.argv) > 1:
        return sys.argv[1]
    return os.environ.get("FASTSOURCE_BOOTSTRAP", "127.0.0.1:19092")


def sample_topic(name: str, messages: int = 20_000, partitions: int = 4) -> str:
    """(Re)create topic `name` with `messages` JSON events; returns its name."""
    produce_sample(bootstrap(), name, messages, partitions)
    return name
