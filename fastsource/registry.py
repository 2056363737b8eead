"""A real Confluent-compatible Schema Registry on loopback, for trying Avro and Protobuf topics out, the
tests and the benchmarks.

It is Apicurio Registry (Apache-2.0), a Quarkus application fetched once from Maven Central with
Maven and unpacked into `$FASTSOURCE_HOME/apicurio-registry-<version>/`; it needs Java 21+ (found by
`fastsource._local.find_java`). Schemas are kept in memory: a stopped registry forgets them. Each
registry's pid and log live in `$FASTSOURCE_HOME/run/registry-<port>/`; it listens on 127.0.0.1:port
and its management interface (health) on 127.0.0.1:port + 1.
"""
from __future__ import annotations

import logging
import shutil
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from fastsource._local import fetch_once, find_java, home, maven, port_open, running_pid, stop_service, tail
from fastsource.errors import RegistryLauncherError

log = logging.getLogger(__name__)

APICURIO_VERSION = "3.3.3"
APICURIO_ARTIFACT = f"io.apicurio:apicurio-registry-app:{APICURIO_VERSION}:tar.gz:all"
JAVA_MINIMUM = 21
# Below the kernel's ephemeral port range, like the broker's; the management interface takes port + 1.
DEFAULT_PORT = 18181
CCOMPAT_PATH = "/apis/ccompat/v7"
# Quarkus starts in ~10 s on an idle machine, but took over 120 s on a 2-core machine at load 20.
START_TIMEOUT_S = 300.0
_JVM_FLAGS = ["-Xms64m", "-Xmx512m", "-XX:+UseSerialGC", "-Djava.awt.headless=true"]


def _app_dir() -> Path:
    return home() / f"apicurio-registry-{APICURIO_VERSION}"


def download_notice() -> Optional[str]:
    """What a first start is about to download (for the user to see), or None when it is cached."""
    app = _app_dir()
    if (app / "quarkus-run.jar").exists():
        return None
    return (f"downloading Apicurio Registry {APICURIO_VERSION} (~152 MB) from Maven Central into {app} "
            "(first start only) ...")


def check_port(port: int) -> int:
    """`port` if the registry can listen on it and on port + 1 (management); RegistryLauncherError
    otherwise."""
    if not 1 <= port <= 65534:
        raise RegistryLauncherError(f"port {port} is out of range: the registry needs it and port + 1 "
                                    "(its management interface) within 1-65535")
    return port


def _fetch_apicurio(staging: Path) -> Path:
    """The registry's tarball copied by Maven into `staging`, unpacked into `staging`/app."""
    what = f"Apicurio Registry {APICURIO_VERSION}"
    maven(["dependency:copy", f"-Dartifact={APICURIO_ARTIFACT}", f"-DoutputDirectory={staging}"],
          what, RegistryLauncherError)
    archive = staging / f"apicurio-registry-app-{APICURIO_VERSION}-all.tar.gz"
    app = staging / "app"
    try:
        with tarfile.open(archive) as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(app, filter="data")
            else:  # Python < 3.11.4: refuse members that would land outside the directory
                for member in tar.getmembers():
                    if member.name.startswith("/") or ".." in Path(member.name).parts:
                        raise RegistryLauncherError(f"{archive} holds an unsafe path {member.name!r}")
                tar.extractall(app)
    except tarfile.TarError as exc:
        raise RegistryLauncherError(f"cannot unpack {archive}: {exc}") from exc
    if not (app / "quarkus-run.jar").exists():
        raise RegistryLauncherError(f"{archive} holds no quarkus-run.jar: not the registry application")
    return app


def registry_app() -> Path:
    """The unpacked registry application (its quarkus-run.jar), fetched with Maven on first use."""
    app = _app_dir()
    if download_notice() is not None:
        log.info("downloading Apicurio Registry %s from Maven Central into %s", APICURIO_VERSION, app)
        fetch_once(app, f"Apicurio Registry {APICURIO_VERSION}", _fetch_apicurio, RegistryLauncherError)
    return app


def _answers(url: str, timeout: float) -> bool:
    """Whether the Confluent-compatible API at `url` answers a subjects listing."""
    try:
        with urllib.request.urlopen(f"{url}/subjects", timeout=timeout) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError, ValueError):
        return False


@dataclass
class LocalRegistry:
    """One local Schema Registry: `start()` returns its Confluent-compatible base URL; `stop()`,
    `status()`, `wipe()`."""

    port: int = DEFAULT_PORT

    @property
    def url(self) -> str:
        """The Confluent-compatible base URL (what `schema_registry=` and `--schema-registry` take)."""
        return f"http://127.0.0.1:{self.port}{CCOMPAT_PATH}"

    @property
    def run_dir(self) -> Path:
        return home() / "run" / f"registry-{self.port}"

    @property
    def log_file(self) -> Path:
        return self.run_dir / "registry.log"

    @property
    def _pid_file(self) -> Path:
        return self.run_dir / "registry.pid"

    def pid(self) -> Optional[int]:
        """Pid of this registry's JVM if it is running."""
        return running_pid(self._pid_file)

    def status(self) -> str:
        pid = self.pid()
        if pid is None:
            return f"stopped (port {self.port})"
        state = "running" if _answers(self.url, 5) else "starting or unresponsive"
        return f"{state}: {self.url} (pid {pid}, log {self.log_file})"

    def start(self, timeout: float = START_TIMEOUT_S) -> str:
        """Start the registry unless it already runs here; returns its base URL once it answers."""
        check_port(self.port)
        if self.pid() is not None:
            if _answers(self.url, 10):
                return self.url
            raise RegistryLauncherError(
                f"a registry process for port {self.port} exists (pid {self.pid()}) but does not answer; "
                f"run `fastsource registry stop --port {self.port}`.\n{tail(self.log_file)}")
        for port in (self.port, self.port + 1):
            if port_open(port):
                raise RegistryLauncherError(f"port {port} on 127.0.0.1 is taken by another process; "
                                            "choose another with --port")
        java = find_java(JAVA_MINIMUM, f"run Apicurio Registry {APICURIO_VERSION}", RegistryLauncherError)
        app = registry_app()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        settings = {
            "quarkus.http.host": "127.0.0.1",
            "quarkus.http.port": self.port,
            "quarkus.management.host": "127.0.0.1",
            "quarkus.management.port": self.port + 1,
            "quarkus.http.access-log.enabled": "false",
        }
        with open(self.log_file, "wb") as out:
            proc = subprocess.Popen(
                [java, *_JVM_FLAGS, *(f"-D{k}={v}" for k, v in settings.items()),
                 "-jar", str(app / "quarkus-run.jar")],
                cwd=self.run_dir, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        self._pid_file.write_text(str(proc.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self._pid_file.unlink(missing_ok=True)
                raise RegistryLauncherError(
                    f"the schema registry exited with code {proc.returncode} during start-up; "
                    f"log {self.log_file}:\n{tail(self.log_file)}")
            if _answers(self.url, 2):
                return self.url
            time.sleep(0.3)
        self.stop()
        raise RegistryLauncherError(f"the schema registry did not answer on {self.url} within "
                                    f"{timeout:.0f} s; log {self.log_file}:\n{tail(self.log_file)}")

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop the registry (SIGTERM, then SIGKILL after `timeout`). Returns whether one was running."""
        return stop_service(self._pid_file, timeout)

    def wipe(self) -> None:
        """Delete this registry's run directory (pid, log); it must be stopped. Schemas live in its
        memory only, so a stopped registry has no other data."""
        if self.pid() is not None:
            raise RegistryLauncherError(f"stop the registry on port {self.port} before wiping it")
        shutil.rmtree(self.run_dir, ignore_errors=True)
