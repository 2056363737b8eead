"""Checks of the public API's arguments: a wrong value is refused at once with a ConfigError that names
the argument and shows the value, never a TypeError or a failure later in a background thread."""
from __future__ import annotations

import os
import re
from numbers import Real
from typing import Any, Iterable, Mapping, Optional

from fastsource.errors import ConfigError

# The security protocols librdkafka accepts as a `proto://` prefix of a bootstrap address.
_PROTOCOLS = ("plaintext", "ssl", "sasl_plaintext", "sasl_ssl")
_HOSTNAME = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?$")
_IPV6 = re.compile(r"^[0-9A-Fa-f:.]+(%[A-Za-z0-9_.-]+)?$")


def _refuse(name: str, expected: str, value: Any) -> ConfigError:
    return ConfigError(f"{name} must be {expected}, not {value!r}")


def check_instance(name: str, value: Any, kind: type, expected: str, optional: bool = False) -> Any:
    """`value` if it is a `kind` (or None when `optional`)."""
    if (value is None and optional) or isinstance(value, kind):
        return value
    raise _refuse(name, expected, value)


def check_int(name: str, value: Any, minimum: Optional[int] = None, optional: bool = False) -> Optional[int]:
    """`value` if it is an integer (not a bool) of at least `minimum` (or None when `optional`)."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or (minimum is not None and value < minimum):
        bound = "" if minimum is None else f" >= {minimum}"
        raise _refuse(name, f"an integer{bound}{' or None' if optional else ''}", value)
    return value


def check_number(name: str, value: Any, positive: bool = True) -> float:
    """`value` if it is a real number (not a bool), above 0 when `positive`."""
    if isinstance(value, bool) or not isinstance(value, Real) or value != value or (positive and value <= 0):
        raise _refuse(name, "a number > 0" if positive else "a number", value)
    return float(value)


def check_bool(name: str, value: Any) -> bool:
    return check_instance(name, value, bool, "True or False")


def check_name(name: str, value: Any, optional: bool = False) -> Optional[str]:
    """`value` if it is a non-empty string (or None when `optional`)."""
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise _refuse(name, f"a non-empty string{' or None' if optional else ''}", value)
    return value


def check_path(name: str, value: Any, optional: bool = False) -> Any:
    """`value` if it is a path (str or os.PathLike) or None when `optional`."""
    if (value is None and optional) or isinstance(value, (str, os.PathLike)) and str(value):
        return value
    raise _refuse(name, f"a directory path{' or None' if optional else ''}", value)


def check_topics(value: Any) -> list[str]:
    """A list of topic names from one name or an iterable of names."""
    names = [value] if isinstance(value, str) else value
    if isinstance(names, (bytes, Mapping)) or not isinstance(names, Iterable):
        raise _refuse("topics", "a topic name or a list of topic names", value)
    names = list(names)
    if not names or not all(isinstance(n, str) and n for n in names):
        raise _refuse("topics", "a topic name or a non-empty list of topic names", value)
    return names


def check_partitions(value: Any, name: str = "partitions") -> list[tuple[str, int]]:
    """A list of (topic, partition) pairs; `name` is the argument they were given in."""
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise _refuse(name, "a list of (topic, partition) pairs", value)
    pairs = list(value)
    for pair in pairs:
        if (not isinstance(pair, (tuple, list)) or len(pair) != 2 or not isinstance(pair[0], str)
                or not pair[0] or isinstance(pair[1], bool) or not isinstance(pair[1], int) or pair[1] < 0):
            raise ConfigError(f"{name} must hold (topic, partition) pairs with a partition >= 0, "
                              f"not {pair!r}")
    return [(topic, partition) for topic, partition in pairs]


def check_properties(value: Any) -> dict[str, str]:
    """librdkafka properties as strings, from a mapping with string keys (or None)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) and k for k in value):
        raise _refuse("properties", "a mapping of librdkafka property names to values", value)
    if any(v is None for v in value.values()):
        raise ConfigError(f"properties must not hold None values: {dict(value)!r}")
    return {k: str(v) for k, v in value.items()}


def check_bootstrap_servers(value: Any) -> str:
    """`value` if it is a comma-separated list of `[protocol://]host[:port]` addresses."""
    if not isinstance(value, str) or not value.strip():
        raise _refuse("bootstrap_servers", "a non-empty 'host:port[,host:port...]' string", value)
    for entry in value.split(","):
        problem = _address_problem(entry.strip())
        if problem:
            raise ConfigError(f"bootstrap_servers {value!r} is not a 'host:port[,host:port...]' list: "
                              f"{problem}")
    return value


def _address_problem(entry: str) -> Optional[str]:
    """What is wrong with one bootstrap address, or None."""
    if not entry:
        return "an entry is empty"
    address = entry
    if "://" in address:
        protocol, address = address.split("://", 1)
        if protocol.lower() not in _PROTOCOLS:
            return f"{entry!r} has the scheme {protocol!r} (Kafka takes one of {', '.join(_PROTOCOLS)})"
    if address.startswith("["):
        host, bracket, rest = address[1:].partition("]")
        if not bracket or not _IPV6.match(host):
            return f"{entry!r} has no valid bracketed IPv6 address"
        if rest and not rest.startswith(":"):
            return f"{entry!r} has {rest!r} after the address"
        port = rest[1:] if rest else None
    else:
        host, colon, port = address.rpartition(":") if ":" in address else (address, "", None)
        if ":" in host:
            return f"{entry!r} is ambiguous: write an IPv6 address in brackets, as [::1]:9092"
        if not _HOSTNAME.match(host):
            return f"{entry!r} has no valid host name"
    if port is not None and not (port.isdigit() and 1 <= int(port) <= 65535):
        return f"{entry!r} has the port {port!r} (1 to 65535)"
    return None
