"""The Schema Registry access of the formats with schemas: outages waited out against a deadline,
credentials refused at once, unknown ids told apart, no credential in any message, pickling."""
from __future__ import annotations

import http.server
import pickle
import threading
from typing import Iterator, List

import pytest

pytest.importorskip("confluent_kafka.schema_registry")

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient  # noqa: E402

from fastsource.errors import ConfigError, SchemaRegistryError  # noqa: E402
from fastsource.formats.registry import Registry, UnknownSchemaError, as_registry  # noqa: E402

AVRO = '{"type": "record", "name": "R", "fields": [{"name": "a", "type": "long"}]}'


class FakeClock:
    """A clock whose sleeps advance it: the registry's deadline logic without real waiting."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: List[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Scripted(http.server.BaseHTTPRequestHandler):
    """Answers each GET with the next (status, body) of the server's script, the last one forever."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        script = self.server.script  # type: ignore[attr-defined]
        status, body = script[0] if len(script) == 1 else script.pop(0)
        self.server.paths.append(self.path)  # type: ignore[attr-defined]
        payload = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def scripted() -> Iterator:
    """A registry on loopback that answers from a script: `server.script = [(status, body), ...]`."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    server.script = [(200, "{}")]
    server.paths = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield server
    server.shutdown()
    server.server_close()


def test_schemas_come_by_id_once_and_latest_by_subject():
    client = SchemaRegistryClient.new_client({"url": "mock://test-registry-ids"})
    schema_id = client.register_schema("t-value", Schema(AVRO, "AVRO"))
    registry = Registry(client)
    assert registry.schema(schema_id).schema_str == client.get_schema(schema_id).schema_str
    assert registry.latest("t-value")[0] == schema_id


def test_an_id_the_registry_does_not_have_is_an_unknown_schema_not_an_outage(scripted):
    scripted.script = [(404, '{"error_code": 40403, "message": "Schema 7 not found"}')]
    clock = FakeClock()
    with pytest.raises(UnknownSchemaError, match="schema id 7"):
        Registry(scripted.url, clock=clock, sleep=clock.sleep).schema(7)
    assert clock.sleeps == []


def test_an_unreachable_registry_is_waited_out_then_named_with_the_id():
    clock = FakeClock()
    registry = Registry("http://127.0.0.1:1", timeout_ms=5000, clock=clock, sleep=clock.sleep)
    with pytest.raises(SchemaRegistryError, match=r"http://127.0.0.1:1 did not answer for schema id 3 within 5000 ms"):
        registry.schema(3)
    assert clock.now == pytest.approx(5.0)
    assert len(clock.sleeps) > 3  # it kept trying while the time lasted


def test_a_registry_that_comes_back_within_the_timeout_is_invisible(scripted):
    scripted.script = [(503, "{}"), (503, "{}"),
                       (200, '{"schema": "' + AVRO.replace('"', '\\"') + '", "schemaType": "AVRO"}')]
    clock = FakeClock()
    schema = Registry(scripted.url, timeout_ms=5000, clock=clock, sleep=clock.sleep).schema(5)
    assert '"name": "R"' in schema.schema_str
    assert len(clock.sleeps) == 2


@pytest.mark.parametrize("status", [401, 403])
def test_refused_credentials_fail_at_once_and_are_never_shown(scripted, status):
    scripted.script = [(status, '{"error_code": 40101, "message": "Unauthorized"}')]
    clock = FakeClock()
    host = scripted.url.split("://", 1)[1]
    registry = Registry({"url": f"http://alice:hunter2-url@{host}", "timeout": 5}, clock=clock, sleep=clock.sleep)
    with pytest.raises(SchemaRegistryError) as caught:
        registry.schema(1)
    assert caught.value.status == status and clock.sleeps == []
    for shown in (str(caught.value), repr(registry), registry.url):
        assert "hunter2" not in shown and "alice" not in shown
    assert scripted.url in str(caught.value)


def test_basic_auth_settings_never_appear_in_a_message():
    clock = FakeClock()
    registry = Registry({"url": "http://127.0.0.1:1", "basic.auth.user.info": "bob:s3cret-pw"},
                        timeout_ms=200, clock=clock, sleep=clock.sleep)
    with pytest.raises(SchemaRegistryError) as caught:
        registry.schema(1)
    assert "s3cret-pw" not in str(caught.value) and "s3cret-pw" not in repr(registry)


def test_a_subject_with_no_schema_says_to_give_the_reader_schema(scripted):
    scripted.script = [(404, '{"error_code": 40401, "message": "Subject not found"}')]
    with pytest.raises(SchemaRegistryError, match="no subject 'orders-value'.*give the reader schema"):
        Registry(scripted.url).latest("orders-value")


def test_a_registry_travels_as_its_settings_with_the_schemas_it_fetched(scripted):
    scripted.script = [(200, '{"schema": "' + AVRO.replace('"', '\\"') + '", "schemaType": "AVRO"}')]
    registry = Registry(scripted.url)
    registry.schema(9)
    copy = pickle.loads(pickle.dumps(registry))
    scripted.script = [(500, "{}")]
    assert copy.schema(9).schema_str == registry.schema(9).schema_str
    assert copy.url == registry.url


def test_a_client_without_its_settings_refuses_to_travel():
    class Bare:
        def get_schema(self, schema_id):  # pragma: no cover - never called
            raise AssertionError

    with pytest.raises(ConfigError, match="cannot travel"):
        pickle.dumps(Registry(Bare()))


@pytest.mark.parametrize("bad", [None, "", 42, {"basic.auth.user.info": "a:b"}])
def test_bad_registry_arguments_are_named(bad):
    with pytest.raises(ConfigError, match="schema_registry"):
        as_registry(bad)
