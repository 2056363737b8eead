"""The one error table (fastsource.errors.ERROR_TABLE) decides, for every librdkafka/Kafka code and
every code of the compiled units, the exception class, whether it is retriable and whether it is
fatal; every caller (split reader, admin client, formats, Ray runtime) goes through it."""
from __future__ import annotations

import dataclasses
import pickle

import pyarrow as pa
import pytest
from confluent_kafka import KafkaError, KafkaException

from fastsource import errors
from fastsource.errors import (CODES, ERROR_TABLE, FS_READER_DIED, AuthenticationError, CoreError,
                               FastsourceError, KafkaFetchError, ReaderActorDiedError, error_from_code,
                               is_fatal, kind_of)
from fastsource.formats import Json, RecordDecodeError
from fastsource.kafka import _consumer
from fastsource.kafka import admin as admin_module
from fastsource.kafka.admin import KafkaAdmin
from fastsource.kafka.reader.split_reader import map_core_error


@pytest.mark.parametrize("row", list(ERROR_TABLE.values()), ids=lambda row: row.name)
def test_every_code_becomes_its_class_with_the_tables_retriable_and_fatal(row):
    error = error_from_code(row.code, "what happened")
    assert type(error) is row.error and isinstance(error, FastsourceError)
    assert (error.retriable, error.fatal, error.code) == (row.retriable, row.fatal, row.code)
    assert is_fatal(error) is row.fatal
    assert row.retriable is not row.fatal, "an error asked again is never one that fails the stream"
    again = pickle.loads(pickle.dumps(error))  # a Ray actor's error reaches the driver pickled
    assert (type(again), again.fatal, again.retriable) == (row.error, row.fatal, row.retriable)


def test_the_tables_librdkafka_names_are_librdkafkas_spelling_of_the_codes():
    for row in ERROR_TABLE.values():
        if not row.name.startswith("FS_"):
            assert getattr(KafkaError, row.name) == row.code, row.name


def test_the_compiled_consumer_acts_on_the_tables_codes():
    for name, code in _consumer.CODES.items():
        if name != "_PARTITION_EOF":  # end of a partition: an event, not an error
            assert CODES[name] == code, name


def test_a_code_the_table_does_not_list_fails_the_read():
    error = error_from_code(12345, "strange")
    assert type(error) is KafkaFetchError and error.fatal and not error.retriable


def test_fatal_belongs_to_the_error_not_its_class():
    moving = error_from_code(CODES["NOT_LEADER_FOR_PARTITION"], "leader moved")
    denied = error_from_code(CODES["TOPIC_AUTHORIZATION_FAILED"], "denied")
    assert type(moving) is type(denied) is KafkaFetchError
    assert not is_fatal(moving) and is_fatal(denied)


def test_a_storage_error_is_retried_by_the_admin_client_and_replaces_a_reader():
    """KAFKA_STORAGE_ERROR: a replica's log directory failed; its leadership moves, so asking again
    succeeds. The admin client and the readers agree on it (they disagreed before the table)."""
    code = CODES["KAFKA_STORAGE_ERROR"]
    assert admin_module._transient(KafkaError(code))
    mapped = map_core_error(CoreError(code, None, "log dir offline", "t", 0, 5), "b:1")
    assert mapped.retriable and not is_fatal(mapped)


def _retype(monkeypatch, name: str, **changes) -> None:
    """Change one row of the table for one test: a caller that bypasses the table then shows."""
    code = CODES[name]
    monkeypatch.setitem(ERROR_TABLE, code, dataclasses.replace(ERROR_TABLE[code], **changes))


def test_the_split_reader_follows_the_table(monkeypatch):
    _retype(monkeypatch, "NOT_LEADER_FOR_PARTITION", retriable=False, fatal=True)
    mapped = map_core_error(CoreError(CODES["NOT_LEADER_FOR_PARTITION"], None, "x", "t", 0, 1), "b:1")
    assert is_fatal(mapped) and not mapped.retriable
    _retype(monkeypatch, "TOPIC_AUTHORIZATION_FAILED", error=AuthenticationError)
    mapped = map_core_error(CoreError(CODES["TOPIC_AUTHORIZATION_FAILED"], None, "denied"), "b:1")
    assert type(mapped) is AuthenticationError and "could not authenticate to b:1" in str(mapped)


def test_the_admin_client_follows_the_table(monkeypatch):
    code = CODES["NOT_LEADER_FOR_PARTITION"]
    assert admin_module._transient(KafkaError(code, "x", retriable=True))
    _retype(monkeypatch, "NOT_LEADER_FOR_PARTITION", retriable=False, fatal=True)
    assert not admin_module._transient(KafkaError(code, "x", retriable=True))
    admin = KafkaAdmin("127.0.0.1:1")
    error = admin._offsets_error(KafkaException(KafkaError(code, "x")), "list offsets")
    assert type(error) is KafkaFetchError and error.fatal and error.name == "NOT_LEADER_FOR_PARTITION"


def test_security_refusals_are_recognised_in_one_place(monkeypatch):
    transport = CODES["_TRANSPORT"]
    assert errors.authentication_failure(transport, "127.0.0.1:1/bootstrap: SSL handshake failed: x")
    assert errors.authentication_failure(CODES["_SSL"], "anything")
    assert not errors.authentication_failure(transport, "Connection refused")
    monkeypatch.setattr(errors, "_TLS_REFUSALS", ("a words only this test uses",))
    assert not errors.authentication_failure(transport, "SSL handshake failed")
    admin = KafkaAdmin("127.0.0.1:1")
    admin._on_client_error(KafkaError(transport, "SSL handshake failed"))
    assert admin._auth_failure is None  # the admin client asks errors.authentication_failure
    admin._on_client_error(KafkaError(transport, "x: a words only this test uses"))
    assert admin._auth_failure is not None


def test_the_json_format_words_the_prescan_codes_from_the_table(monkeypatch):
    raw = pa.array([b'{"a": 1}', b"[1, 2]"], pa.binary())
    with pytest.raises(RecordDecodeError, match=r"the value is not a JSON object \(at byte") as info:
        Json()._parse(raw)
    assert info.value.row == 1
    monkeypatch.setitem(errors.JSON_PROBLEMS, 2, "words from the table")
    with pytest.raises(RecordDecodeError, match="invalid JSON: words from the table"):
        Json()._parse(raw)


def test_a_dead_ray_actor_is_a_non_fatal_error_from_the_table(monkeypatch):
    ray_runtime = pytest.importorskip("fastsource.ray.runtime")
    from ray.exceptions import RayActorError

    def dead(ref, timeout=None):
        raise RayActorError()

    monkeypatch.setattr(ray_runtime.ray, "get", dead)
    handle = ray_runtime.RayReaderHandle(3, None, None, None, 0.1)
    with pytest.raises(ReaderActorDiedError, match="the actor of reader 3 died") as info:
        handle._answer(object())
    assert isinstance(info.value, FastsourceError) and not is_fatal(info.value)
    assert info.value.retriable and info.value.code == FS_READER_DIED
    _retype(monkeypatch, "FS_READER_DIED", retriable=False, fatal=True)
    with pytest.raises(ReaderActorDiedError) as info:
        handle._answer(object())
    assert is_fatal(info.value)


def test_errors_without_a_code_are_fatal_unless_they_say_otherwise():
    assert is_fatal(FastsourceError("bad"))
    assert not is_fatal(FastsourceError("passing", fatal=False))
    assert not is_fatal(RuntimeError("unexpected crash of a fetcher"))
    assert is_fatal(MemoryError())
    assert kind_of(None).fatal
