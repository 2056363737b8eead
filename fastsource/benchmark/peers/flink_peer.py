"""Flink peer: FlinkKafkaRead.java (Flink's KafkaSource on a local MiniCluster), built once into the cache.

Flink's jars come from Maven Central with `mvn dependency:copy-dependencies` (like the local broker's
Kafka jars), into `$FASTSOURCE_HOME/bench-flink/lib-<hash of the pom>`; the program is compiled with
`javac` into `classes-<hash of pom and source>`, so that an edit of either rebuilds what it affects.
"""
from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from fastsource.broker import home

HERE = Path(__file__).resolve().parent / "flink"
PROGRAM = "FlinkKafkaRead"


class Unavailable(Exception):
    """The Flink peer cannot run here; the message says why."""


def versions() -> str:
    """Flink and connector versions, as pinned in the pom."""
    pom = (HERE / "pom.xml").read_text()
    flink = re.search(r"<flink.version>(.+?)</flink.version>", pom).group(1)
    connector = re.search(r"flink-connector-kafka</artifactId><version>(.+?)</version>", pom).group(1)
    return f"Flink {flink}, flink-connector-kafka {connector}"


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise Unavailable(f"`{name}` is not on PATH")
    return found


def _fetch_jars(lib: Path) -> None:
    """Flink's runtime jars into `lib`, through a staging directory so that a failed fetch leaves none."""
    mvn = _tool("mvn")
    lib.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="lib-", dir=lib.parent))
    try:
        result = subprocess.run(
            [mvn, "-q", "-B", "-f", str(HERE / "pom.xml"), "dependency:copy-dependencies",
             "-DincludeScope=runtime", f"-DoutputDirectory={staging / 'lib'}"],
            capture_output=True, text=True)
        if result.returncode != 0:
            tail = (result.stdout + result.stderr).strip().splitlines()[-1:] or ["no output"]
            raise Unavailable(f"Maven could not fetch Flink's jars: {tail[0][:200]}")
        (staging / "lib").rename(lib)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _digest(*paths: Path) -> str:
    return hashlib.sha256(b"".join(p.read_bytes() for p in paths)).hexdigest()[:12]


def prepare() -> str:
    """The classpath of the built program, fetching and compiling it on first use."""
    _tool("java")
    javac = _tool("javac")
    source, pom = HERE / f"{PROGRAM}.java", HERE / "pom.xml"
    root = home() / "bench-flink"
    lib, classes = root / f"lib-{_digest(pom)}", root / f"classes-{_digest(pom, source)}"
    if not lib.exists():
        _fetch_jars(lib)
    if not (classes / f"{PROGRAM}.class").exists():
        staging = Path(tempfile.mkdtemp(prefix="classes-", dir=root))
        result = subprocess.run([javac, "-d", str(staging), "-cp", f"{lib}/*", str(source)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            raise Unavailable(f"javac failed: {result.stderr.strip()[-300:]}")
        shutil.rmtree(classes, ignore_errors=True)
        staging.rename(classes)
    return f"{classes}:{lib}/*"


def command(classpath: str, bootstrap: str, topic: str, parallelism: int, kind: str,
            schema_file: Path | None = None) -> list[str]:
    """The JVM command of one read: kind is raw (byte[] values), json (Jackson into a POJO) or avro
    (Confluent-framed Avro decoded by Flink's AvroDeserializationSchema with the writer schema in
    `schema_file`)."""
    if (kind == "avro") != (schema_file is not None):
        raise ValueError("the avro kind, and only it, takes the writer schema's file")
    extra = [str(schema_file)] if schema_file is not None else []
    return [shutil.which("java") or "java", "-cp", classpath, PROGRAM, bootstrap, topic, str(parallelism), kind,
            *extra]
