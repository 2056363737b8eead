"""Finding a Java new enough for a local service (the Schema Registry needs 21+, the broker 17+)."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from fastsource import _local
from fastsource.errors import RegistryLauncherError


def _jdk(root: Path, name: str, version: str) -> Path:
    """A JDK directory whose bin/java reports `version` the way `java -version` does (on stderr)."""
    java = root / name / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text(f"#!/bin/sh\necho 'openjdk version \"{version}\" 2025-04-15' >&2\n")
    java.chmod(java.stat().st_mode | stat.S_IXUSR)
    return root / name


@pytest.fixture
def machine(tmp_path, monkeypatch):
    """A machine with no Java but what the test installs: PATH and JVM_DIRS point into tmp_path."""
    (tmp_path / "path").mkdir()
    (tmp_path / "jvm").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "path"))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setattr(_local, "JVM_DIRS", (str(tmp_path / "jvm"),))
    return tmp_path


def test_java_home_is_used_when_new_enough(machine, monkeypatch):
    home = _jdk(machine, "home", "21.0.2")
    _jdk(machine / "jvm", "newer", "25.0.1")
    monkeypatch.setenv("JAVA_HOME", str(home))
    assert _local.find_java(21, "run it", RegistryLauncherError) == str(home / "bin" / "java")


def test_an_old_java_home_and_path_fall_back_to_the_newest_installed_jdk(machine, monkeypatch):
    monkeypatch.setenv("JAVA_HOME", str(_jdk(machine, "home", "17.0.15")))
    os.symlink(_jdk(machine, "onpath", "11.0.2") / "bin" / "java", machine / "path" / "java")
    _jdk(machine / "jvm", "a-22", "22.0.1")
    newest = _jdk(machine / "jvm", "b-25", "25.0.1")
    _jdk(machine / "jvm", "c-17", "17.0.1")
    assert _local.find_java(21, "run it", RegistryLauncherError) == str(newest / "bin" / "java")


def test_no_java_new_enough_names_every_java_looked_at(machine, monkeypatch):
    monkeypatch.setenv("JAVA_HOME", str(_jdk(machine, "home", "17.0.15")))
    os.symlink(_jdk(machine, "onpath", "1.8.0_292") / "bin" / "java", machine / "path" / "java")
    _jdk(machine / "jvm", "jdk-11", "11.0.2")
    with pytest.raises(RegistryLauncherError) as raised:
        _local.find_java(21, "run the registry", RegistryLauncherError)
    message = str(raised.value)
    assert message.startswith("no Java 21+ found to run the registry")
    assert f"$JAVA_HOME {machine / 'home' / 'bin' / 'java'} (Java 17)" in message
    assert f"PATH {machine / 'path' / 'java'} (Java 8)" in message
    assert f"{machine / 'jvm' / 'jdk-11' / 'bin' / 'java'} (Java 11)" in message
    assert "set JAVA_HOME" in message


def test_no_java_at_all_says_so(machine):
    with pytest.raises(RegistryLauncherError, match=r"no Java 21\+ found .*\$JAVA_HOME \(not set\)"):
        _local.find_java(21, "run it", RegistryLauncherError)
