"""Make the librdkafka that confluent-kafka ships visible to the compiled consumer
(`fastsource.kafka._consumer`), import it, and check that the library is one it was built for.

The consumer is built without linking any librdkafka: its librdkafka symbols are resolved when it is
imported, against the library confluent-kafka has already loaded, promoted here to global scope. The
process therefore holds exactly one librdkafka, and upgrading confluent-kafka cannot leave the
consumer pointing at a library that is gone; a library of another ABI or older than the declarations
the consumer was compiled with (includes/rdkafka_abi.h) is refused at import with both named.
"""
from __future__ import annotations

import ctypes
import importlib
import os
import re
from pathlib import Path
from types import ModuleType


def _loaded_librdkafka() -> str | None:
    """Path of the librdkafka file mapped into this process, if any."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            for line in maps:
                path = line.rstrip("\n").split(maxsplit=5)[-1]
                if "librdkafka" in os.path.basename(path) and os.path.isfile(path):
                    return path
    except OSError:
        return None
    return None


def _shipped_librdkafka(confluent_kafka: ModuleType) -> str | None:
    """Path of the librdkafka inside the confluent-kafka wheel (`confluent_kafka.libs/`)."""
    libs = Path(confluent_kafka.__file__).resolve().parent.parent / "confluent_kafka.libs"
    candidates = sorted(libs.glob("librdkafka*.so*"))
    return str(candidates[0]) if candidates else None


def version_text(version: int) -> str:
    """`rd_kafka_version()`'s 0xMMmmrrxx as major.minor.revision (a pre-release with its number)."""
    text = f"{version >> 24 & 0xFF}.{version >> 16 & 0xFF}.{version >> 8 & 0xFF}"
    return text if version & 0xFF == 0xFF else f"{text}-pre{version & 0xFF}"


def soname_abi(path: str) -> int | None:
    """The ABI number of a librdkafka shared object from its file name (`librdkafka*.so.1` -> 1)."""
    found = re.search(r"\.so\.(\d+)", os.path.basename(path))
    return int(found.group(1)) if found else None


def check_librdkafka(loaded: int, path: str, built: int, built_abi: int) -> None:
    """Refuse a librdkafka the consumer was not built for: another ABI (the soname's number), another
    major version, or a version older than the one its declarations describe (`built`, from
    rdkafka_abi.h's RD_KAFKA_VERSION). Raises ImportError naming both libraries."""
    abi = soname_abi(path)
    problems = []
    if abi is not None and abi != built_abi:
        problems.append(f"its ABI is librdkafka.so.{abi}, not librdkafka.so.{built_abi}")
    if loaded >> 24 != built >> 24:
        problems.append(f"its major version is {loaded >> 24}, not {built >> 24}")
    elif loaded < built:
        problems.append(f"it is older than {version_text(built)}")
    if problems:
        raise ImportError(
            f"fastsource's compiled consumer was built for librdkafka {version_text(built)} (ABI "
            f"librdkafka.so.{built_abi}), but this process loaded librdkafka {version_text(loaded)} from "
            f"{path}: {'; '.join(problems)}. Install a confluent-kafka that ships librdkafka "
            f"{built >> 24}.x at least {version_text(built)} (confluent-kafka>=2.3), or rebuild fastsource "
            "against the library you have")


def load_core() -> ModuleType:
    """Import the compiled consumer with confluent-kafka's librdkafka as its only librdkafka, after
    checking that librdkafka is one it was built for."""
    try:
        import confluent_kafka
        import confluent_kafka.cimpl  # noqa: F401  (loads librdkafka)
    except ImportError as exc:
        raise ImportError(f"fastsource needs confluent-kafka, which could not be imported: {exc}") from exc
    path = _loaded_librdkafka() or _shipped_librdkafka(confluent_kafka)
    if path is None:
        raise ImportError("fastsource cannot find the librdkafka shared library that confluent-kafka "
                          f"{confluent_kafka.version()[0]} uses")
    try:
        ctypes.CDLL(path, mode=os.RTLD_GLOBAL | os.RTLD_NOW)
    except OSError as exc:
        raise ImportError(f"fastsource cannot load librdkafka from {path}: {exc}") from exc
    try:
        consumer = importlib.import_module("fastsource.kafka._consumer")
    except ImportError as exc:
        raise ImportError(_no_core_message(exc)) from exc
    check_librdkafka(consumer.librdkafka_version_number(), path, consumer.BUILT_RDKAFKA_VERSION,
                     consumer.BUILT_RDKAFKA_ABI)
    return consumer


def _no_core_message(exc: ImportError) -> str:
    """What to do when the compiled units are missing: a source checkout that comes first on
    `sys.path` (Python puts the current directory there) shadows the installed package and its
    compiled units; it needs them built in place."""
    package = Path(__file__).resolve().parent
    checkout = package.parent
    if (package / "kafka" / "_consumer.pyx").is_file() and (checkout / "pyproject.toml").is_file():
        return (f"fastsource is imported from the source checkout {checkout}, whose compiled core "
                f"(fastsource.kafka._consumer) is not built ({exc}); it shadows any installed fastsource when "
                f"Python runs there: build the core in place with `pip install -e .` in {checkout} "
                "(after changing a .pyx: `python setup.py build_ext --inplace`), or run Python from "
                "another directory")
    return (f"fastsource's compiled core (fastsource.kafka._consumer) cannot be imported: {exc}; reinstall "
            "fastsource so that the extension is built (from a source checkout: `pip install -e .`); "
            "there is no pure-Python fallback")
