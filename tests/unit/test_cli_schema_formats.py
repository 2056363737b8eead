"""`fastsource read` with avro and protobuf: what is missing or wrong is refused before anything is
read, in one line naming the option (exit code 2)."""
from __future__ import annotations

import sys

import pytest

from fastsource.cli.main import main
from fastsource.cli.read import message_class
from fastsource.errors import ConfigError

READ = ["read", "-b", "127.0.0.1:9", "-t", "t"]


def _refused(argv: list[str], capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


@pytest.mark.parametrize("side", ["key", "value"])
def test_avro_without_a_registry_names_the_option_and_the_variable(side, capsys, monkeypatch):
    monkeypatch.delenv("FASTSOURCE_SCHEMA_REGISTRY", raising=False)
    err = _refused(READ + [f"--{side}-format", "avro"], capsys)
    assert f"--{side}-format avro" in err and "--schema-registry" in err
    assert "FASTSOURCE_SCHEMA_REGISTRY" in err


def test_protobuf_without_a_message_class_is_refused(capsys):
    assert "--message module:Class" in _refused(READ + ["--value-format", "protobuf"], capsys)
    assert "--key-message module:Class" in _refused(READ + ["--key-format", "protobuf"], capsys)


def test_a_message_class_without_protobuf_is_refused(capsys):
    err = _refused(READ + ["--value-format", "json", "--message", "m:C"], capsys)
    assert "--message applies to --value-format protobuf" in err


def test_a_registry_without_a_schema_format_is_refused(capsys):
    err = _refused(READ + ["--value-format", "json", "--schema-registry", "http://127.0.0.1:9"], capsys)
    assert "--schema-registry applies to" in err


def test_an_unimportable_message_module_is_refused(capsys):
    err = _refused(READ + ["--value-format", "protobuf", "--message", "no_such_module_pb2:Event"], capsys)
    assert "cannot import module no_such_module_pb2" in err


@pytest.mark.parametrize("spec, reason", [
    ("events", "expected module:Class"),
    ("events:", "expected module:Class"),
    ("google.protobuf.timestamp_pb2:Nope", "has no 'Nope'"),
    ("google.protobuf.timestamp_pb2:DESCRIPTOR", "is not a Protobuf message class"),
])
def test_a_wrong_message_spec_names_what_is_wrong(spec, reason):
    with pytest.raises(ConfigError, match=reason):
        message_class(spec)


def test_a_message_class_is_found_in_the_current_directory(tmp_path, monkeypatch):
    """`--message events_pb2:Outer.Inner` finds a module in the working directory, as `python -m`
    would, and nested classes by their dotted name."""
    (tmp_path / "cli_events_pb2.py").write_text(
        "from google.protobuf import timestamp_pb2\n"
        "class Outer:\n    Inner = timestamp_pb2.Timestamp\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    from google.protobuf import timestamp_pb2

    assert message_class("cli_events_pb2:Outer.Inner") is timestamp_pb2.Timestamp
