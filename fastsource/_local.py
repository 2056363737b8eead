"""What the local service launchers share (the Kafka broker, the Schema Registry): the cache home,
run directories with pid files, process checks, Maven downloads and finding a Java to run them with.

Every service runs as its own process group started by us, on 127.0.0.1; its pid and log live in a
run directory under `$FASTSOURCE_HOME` (default `~/.cache/fastsource`).
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional, Sequence, Type

# Where JDKs are installed on Linux distributions and macOS, searched for a Java new enough.
JVM_DIRS: Sequence[str] = ("/usr/lib/jvm", "/usr/java", "/opt/java", "/Library/Java/JavaVirtualMachines")
_VERSION = re.compile(r'version "(\d+)(?:\.(\d+))?')


def home() -> Path:
    """Root of fastsource's caches and local services' state."""
    return Path(os.environ.get("FASTSOURCE_HOME", Path.home() / ".cache" / "fastsource"))


def tail(path: Path, lines: int = 25) -> str:
    """The last `lines` lines of a log file, or "(no log)"."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def require(tool: str, purpose: str, error: Type[Exception]) -> str:
    """The path of `tool` on PATH; `error` saying what it was needed for otherwise."""
    found = shutil.which(tool)
    if found is None:
        raise error(f"`{tool}` is not on PATH; it is needed to {purpose}")
    return found


def port_open(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:`port`."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def running_pid(pid_file: Path) -> Optional[int]:
    """The pid written in `pid_file` if that process still runs."""
    try:
        pid = int(pid_file.read_text())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def stop_service(pid_file: Path, timeout: float) -> bool:
    """Stop the service whose pid `pid_file` holds (its process group: SIGTERM, then SIGKILL after
    `timeout` seconds) and remove the file. Returns whether it was running."""
    pid = running_pid(pid_file)
    if pid is None:
        return False
    _stop_group(pid, timeout)
    pid_file.unlink(missing_ok=True)
    return True


def _stop_group(pid: int, timeout: float) -> None:
    """End the process group led by `pid`: SIGTERM, then SIGKILL after `timeout` seconds."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and pid_alive(pid):
        time.sleep(0.2)
    if pid_alive(pid):
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        while pid_alive(pid):
            time.sleep(0.1)


def fetch_once(target: Path, what: str, fill: Callable[[Path], Path], error: Type[Exception]) -> None:
    """Make `target` by `fill(staging)` (which returns the directory it filled) in a staging directory
    beside it, then rename that into place, so that an interrupted download leaves no half a target."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        made = fill(staging)
        if target.exists():
            shutil.rmtree(target)
        made.rename(target)
    except OSError as exc:
        raise error(f"could not install {what} into {target}: {exc}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def maven(args: Sequence[str], what: str, error: Type[Exception]) -> None:
    """Run Maven (quiet, batch mode) with `args` to fetch `what` from Maven Central; `error` with
    Maven's output when it fails."""
    mvn = require("mvn", f"download {what} from Maven Central", error)
    result = subprocess.run([mvn, "-q", "-B", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise error(f"Maven could not fetch {what}:\n{(result.stdout + result.stderr)[-3000:]}")


def _java_major(java: Path) -> Optional[int]:
    """The feature version of the Java at `java` (its home's `release` file, else `java -version`)."""
    release = java.resolve().parent.parent / "release"
    try:
        for line in release.read_text().splitlines():
            if line.startswith("JAVA_VERSION="):
                found = _VERSION.search('version ' + line.split("=", 1)[1])
                if found:
                    return _feature(found)
    except OSError:
        pass
    try:
        shown = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = _VERSION.search(shown.stderr + shown.stdout)
    return _feature(found) if found else None


def _feature(match: "re.Match[str]") -> int:
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major  # 1.8 is Java 8


def find_java(minimum: int, purpose: str, error: Type[Exception]) -> str:
    """A `java` of feature version `minimum` or newer: `$JAVA_HOME`'s, the one on PATH, or the newest
    under the usual JDK directories (JVM_DIRS). `error` naming every Java looked at otherwise."""
    candidates: list[tuple[str, Path]] = []
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidates.append(("$JAVA_HOME", Path(java_home) / "bin" / "java"))
    on_path = shutil.which("java")
    if on_path:
        candidates.append(("PATH", Path(on_path)))
    installed = []
    for root in JVM_DIRS:
        try:
            homes = sorted(Path(root).iterdir())
        except OSError:
            continue
        for jdk in homes:
            for java in (jdk / "bin" / "java", jdk / "Contents" / "Home" / "bin" / "java"):
                if java.is_file():
                    installed.append((str(root), java))
    looked: list[str] = [] if java_home else ["$JAVA_HOME (not set)"]
    seen: set[Path] = set()
    best: Optional[tuple[int, Path]] = None
    for where, java in candidates + installed:
        real = java.resolve()
        if real in seen:
            continue
        seen.add(real)
        if not os.access(real, os.X_OK):
            looked.append(f"{where} {java} (missing)")
            continue
        major = _java_major(real)
        looked.append(f"{where} {java} (Java {major if major is not None else 'of unknown version'})")
        if major is not None and major >= minimum:
            if where in ("$JAVA_HOME", "PATH"):
                return str(java)
            if best is None or major > best[0]:
                best = (major, java)
    if best is not None:
        return str(best[1])
    raise error(f"no Java {minimum}+ found to {purpose}; looked at {'; '.join(looked)}; searched "
                f"{', '.join(JVM_DIRS) or 'no JDK directories'}. Install a JDK {minimum}+ or set JAVA_HOME "
                "to one")
