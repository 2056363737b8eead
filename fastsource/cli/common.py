"""What every `fastsource` command shares: the bootstrap servers and one-line argument errors."""
from __future__ import annotations

import argparse
import os
import re
from typing import NoReturn, Sequence

from fastsource.errors import ConfigError

# The bootstrap servers of commands given no -b. Deliberately not FASTSOURCE_BOOTSTRAP, which tells
# the test suite to run (creating and deleting topics) against that cluster: setting a default
# cluster for the command line must never opt a cluster into the tests.
BOOTSTRAP_ENV = "FASTSOURCE_BROKERS"


class Parser(argparse.ArgumentParser):
    """argparse with errors on one line (`prog: error: ...`) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def add_bootstrap(parser: argparse.ArgumentParser) -> None:
    """-b / --bootstrap / --bootstrap-server(s), as kcat and Kafka's own tools spell it."""
    parser.add_argument("-b", "--bootstrap", "--bootstrap-server", "--bootstrap-servers",
                        dest="bootstrap", metavar="HOST:PORT[,...]",
                        help=f"bootstrap servers (default: ${BOOTSTRAP_ENV})")


def add_client_properties(parser: argparse.ArgumentParser) -> None:
    """-X property=value: librdkafka client properties (security, timeouts), as kcat spells it."""
    parser.add_argument("-X", dest="property", action="append", default=[], metavar="PROPERTY=VALUE",
                        help="librdkafka client property, e.g. -X security.protocol=SASL_SSL "
                             "(repeatable)")


def client_properties(items: Sequence[str]) -> dict[str, str]:
    """The -X values as a dict; ConfigError for an item without `=` (quoted only when it looks like a
    property name: a mistyped `sasl.password:...` must not be echoed)."""
    result = {}
    for number, item in enumerate(items, 1):
        name, sep, value = item.partition("=")
        if not sep or not name:
            shown = repr(item) if re.fullmatch(r"[A-Za-z0-9._-]+", item) else f"#{number}"
            raise ConfigError(f"bad -X {shown}: expected property=value")
        result[name] = value
    return result


def bootstrap_servers(args: argparse.Namespace) -> str:
    """The -b value, else $FASTSOURCE_BROKERS; ConfigError when neither is set."""
    given = args.bootstrap or os.environ.get(BOOTSTRAP_ENV, "").strip()
    if not given:
        raise ConfigError(f"no bootstrap servers: give -b HOST:PORT or set {BOOTSTRAP_ENV}")
    return given


