"""Make the librdkafka that confluent-kafka ships visible to `fastsource._core`, then import it.

`_core` is built without linking any librdkafka: its librdkafka symbols are resolved when it is
imported, against the library confluent-kafka has already loaded, promoted here to global scope. The
process therefore holds exactly one librdkafka, and upgrading confluent-kafka cannot leave `_core`
pointing at a library that is gone.
"""
from __future__ import annotations

import ctypes
import importlib
import os
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


def load_core() -> ModuleType:
    """Import `fastsource._core` with confluent-kafka's librdkafka as its only librdkafka."""
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
        return importlib.import_module("fastsource._core")
    except ImportError as exc:
        raise ImportError(_no_core_message(exc)) from exc


def _no_core_message(exc: ImportError) -> str:
    """What to do when `fastsource._core` is missing: a source checkout that comes first on
    `sys.path` (Python puts the current directory there) shadows the installed package and its
    compiled core; it needs the core built in place."""
    package = Path(__file__).resolve().parent
    checkout = package.parent
    if (package / "_core.pyx").is_file() and (checkout / "pyproject.toml").is_file():
        return (f"fastsource is imported from the source checkout {checkout}, whose compiled core "
                f"(fastsource._core) is not built ({exc}); it shadows any installed fastsource when "
                f"Python runs there: build the core in place with `pip install -e .` in {checkout} "
                "(after changing a .pyx: `python setup.py build_ext --inplace`), or run Python from "
                "another directory")
    return (f"fastsource's compiled core (fastsource._core) cannot be imported: {exc}; reinstall "
            "fastsource so that the extension is built (from a source checkout: `pip install -e .`); "
            "there is no pure-Python fallback")
