"""A Schema Registry as the formats with schemas use it: writer schemas by id (fetched once, cached),
the latest version of a subject, and the schemas a schema references.

HTTP, authentication and TLS are confluent-kafka's `SchemaRegistryClient`
(`pip install 'fastsource[avro]'`). This module adds what a reader needs on top: a registry that
cannot be reached is waited out up to `timeout_ms` (as a broker outage is), an authentication
failure fails at once, an id the registry does not know is told apart from both, and no message
carries a credential. A `Registry` pickles as its settings, so a format travels to Ray actors.
"""
from __future__ import annotations

import re
import threading
import time
from typing import Any, Callable, Dict, Optional, Tuple, Union
from urllib.parse import urlsplit, urlunsplit

from fastsource.errors import ConfigError, SchemaRegistryError

DEFAULT_TIMEOUT_MS = 60_000
# Settings whose values are secrets: they never appear in a message.
_SECRET_KEYS = ("basic.auth.user.info", "bearer.auth.token", "bearer.auth.client.secret", "ssl.key.password")
# HTTP answers worth waiting out: the registry is up but cannot serve yet, or a proxy in front of it.
_RETRIABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_SCHEMA_NOT_FOUND = 40403


class UnknownSchemaError(LookupError):
    """The registry answered and has no schema under this id: the record that names it is undecodable."""

    def __init__(self, schema_id: int, url: str) -> None:
        super().__init__(f"schema id {schema_id} is not in the registry at {url}")
        self.schema_id = schema_id


def _strip_userinfo(url: str) -> Tuple[str, Optional[str]]:
    """(the URL without user:password@, the password or None)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment)), parts.password


def _client_class() -> Any:
    try:
        from confluent_kafka.schema_registry import SchemaRegistryClient
    except ImportError as exc:  # httpx, attrs, ... come with the extra
        raise ConfigError("reading from a Schema Registry needs confluent-kafka's registry client: "
                          "pip install 'fastsource[avro]' (or 'fastsource[protobuf]')") from exc
    return SchemaRegistryClient


class Registry:
    """A Schema Registry reached through confluent-kafka's client, for the formats with schemas.

    `source`: the registry's URL (several comma-separated; `mock://name` for unit tests), a dict of
    `SchemaRegistryClient` settings (`url`, `basic.auth.user.info`, `bearer.auth.*`, `ssl.*`), or such
    a client. Thread-safe: formats may decode on several reader threads of one process.
    """

    def __init__(self, source: Union[str, Dict[str, Any], Any], timeout_ms: int = DEFAULT_TIMEOUT_MS,
                 *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        client_class = _client_class()
        if isinstance(source, str):
            conf: Optional[Dict[str, Any]] = {"url": source}
            client = None
        elif isinstance(source, dict):
            conf, client = dict(source), None
        elif isinstance(source, client_class) or hasattr(source, "get_schema"):
            conf, client = getattr(source, "_conf", None), source
        else:
            raise ConfigError("schema_registry must be a URL, a dict of SchemaRegistryClient settings or a "
                              f"SchemaRegistryClient, not {type(source).__name__}")
        if conf is not None and not isinstance(conf.get("url"), str):
            raise ConfigError("schema_registry settings need a 'url' (the registry's base URL)")
        self._conf = conf
        self._client = client
        urls, secrets = [], []
        for one in (conf or {}).get("url", "unknown").split(","):
            shown, password = _strip_userinfo(one.strip())
            urls.append(shown)
            if password:
                secrets.append(password)
        for key in _SECRET_KEYS:
            value = (conf or {}).get(key)
            if isinstance(value, str) and value:
                secrets.append(value.split(":", 1)[-1] if key == "basic.auth.user.info" else value)
        self.url = ",".join(urls)
        self._secrets = tuple(sorted(set(secrets), key=len, reverse=True))
        self.timeout_ms = timeout_ms
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._schemas: Dict[int, Any] = {}

    def __getstate__(self) -> Dict[str, Any]:
        if self._conf is None:
            raise ConfigError("a SchemaRegistryClient given without its settings cannot travel to another "
                              "process: pass schema_registry as a URL or a dict of settings")
        return {"conf": self._conf, "timeout_ms": self.timeout_ms, "schemas": dict(self._schemas)}

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__init__(state["conf"], state["timeout_ms"])
        self._schemas.update(state["schemas"])

    def __repr__(self) -> str:
        return f"Registry({self.url!r})"

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return re.sub(r"(https?://)[^/@\s]+@", r"\1***@", text)

    def _get_client(self) -> Any:
        if self._client is None:
            conf = dict(self._conf or {})
            conf.setdefault("max.retries", 0)  # this class waits out outages against its own deadline
            try:
                self._client = _client_class().new_client(conf)
            except (ValueError, TypeError) as exc:
                raise ConfigError(f"schema_registry settings for {self.url}: {self._redact(str(exc))}") from None
        return self._client

    def _call(self, what: str, request: Callable[[Any], Any], not_found: Callable[[Any], Optional[Exception]]) -> Any:
        """Run `request(client)`, retrying while the registry cannot be reached, until `timeout_ms`."""
        from confluent_kafka.schema_registry.error import SchemaRegistryError as ClientError

        deadline = self._clock() + self.timeout_ms / 1000
        pause = 0.1
        while True:
            try:
                return request(self._get_client())
            except ClientError as exc:
                status = exc.http_status_code
                if status in (401, 403):
                    raise SchemaRegistryError(
                        f"the Schema Registry at {self.url} refused {what}: HTTP {status} (check the "
                        "credentials in schema_registry)", url=self.url, status=status) from None
                missing = not_found(exc) if status == 404 else None
                if missing is not None:
                    raise missing from None
                if status not in _RETRIABLE_STATUS:
                    raise SchemaRegistryError(
                        f"the Schema Registry at {self.url} could not serve {what}: HTTP {status}: "
                        f"{self._redact(str(exc.error_message))}", url=self.url, status=status) from None
                reason = f"HTTP {status}"
            except (ConfigError, SchemaRegistryError, UnknownSchemaError):
                raise
            except Exception as exc:  # httpx transport errors: refused, reset, timed out, DNS
                reason = self._redact(f"{type(exc).__name__}: {exc}")
            now = self._clock()
            if now >= deadline:
                raise SchemaRegistryError(
                    f"the Schema Registry at {self.url} did not answer for {what} within "
                    f"{self.timeout_ms} ms ({reason})", url=self.url)
            self._sleep(min(pause, deadline - now))
            pause = min(pause * 2, 2.0)

    def schema(self, schema_id: int) -> Any:
        """The writer schema registered under `schema_id` (a `confluent_kafka.schema_registry.Schema`),
        fetched once per process. UnknownSchemaError if the registry has no such id."""
        found = self._schemas.get(schema_id)
        if found is not None:
            return found

        def unknown(exc: Any) -> Optional[Exception]:
            return UnknownSchemaError(schema_id, self.url) if exc.error_code in (_SCHEMA_NOT_FOUND, -1, None) \
                else None

        found = self._call(f"schema id {schema_id}", lambda client: client.get_schema(schema_id), unknown)
        with self._lock:
            self._schemas[schema_id] = found
        return found

    def latest(self, subject: str) -> Tuple[int, Any]:
        """(id, schema) of the latest version registered under `subject`; SchemaRegistryError if the
        subject has none."""

        def missing(exc: Any) -> Exception:
            return SchemaRegistryError(f"the Schema Registry at {self.url} has no subject {subject!r} (no "
                                       "schema registered for it yet): give the reader schema explicitly",
                                       url=self.url, status=404)

        registered = self._call(f"the latest schema of subject {subject!r}",
                                lambda client: client.get_latest_version(subject), missing)
        with self._lock:
            self._schemas.setdefault(registered.schema_id, registered.schema)
        return registered.schema_id, registered.schema

    def referenced(self, schema: Any) -> Dict[str, Any]:
        """Every schema `schema` references, directly or not, by reference name (for Avro: the named
        type's full name; for Protobuf: the imported file's name)."""
        found: Dict[str, Any] = {}
        pending = list(schema.references or [])
        while pending:
            ref = pending.pop()
            if ref.name in found:
                continue
            registered = self._call(f"version {ref.version} of subject {ref.subject!r} (referenced as {ref.name!r})",
                                    lambda client, r=ref: client.get_version(r.subject, r.version),
                                    lambda exc, r=ref: SchemaRegistryError(
                                        f"the Schema Registry at {self.url} has no version {r.version} of subject "
                                        f"{r.subject!r}, referenced as {r.name!r}", url=self.url, status=404))
            found[ref.name] = registered.schema
            pending.extend(registered.schema.references or [])
        return found


RegistryLike = Union[str, Dict[str, Any], Any]


def as_registry(value: RegistryLike, name: str = "schema_registry") -> Registry:
    """A `Registry` from a `Registry`, a URL, a dict of settings or a SchemaRegistryClient."""
    if isinstance(value, Registry):
        return value
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ConfigError(f"{name} must name a Schema Registry (a URL, a dict of settings or a client)")
    return Registry(value)
