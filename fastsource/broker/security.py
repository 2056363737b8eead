"""The local broker's secured listener: its server properties, its credentials and the librdkafka
properties that reach it.

Modes: `sasl_plaintext` (SCRAM-SHA-512 over plain TCP), `ssl` (TLS, the server authenticated by a CA
made for this broker), `sasl_ssl` (SCRAM-SHA-512 inside TLS) and `mtls` (TLS with a client certificate
that the broker requires). Every start makes a fresh CA, server certificate (for 127.0.0.1 and
localhost), client certificate and SCRAM password, all under `run/<port>/security/`.
"""
from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from fastsource.errors import BrokerError

SECURITY_MODES = ("sasl_plaintext", "ssl", "sasl_ssl", "mtls")
PROTOCOLS = {"sasl_plaintext": "SASL_PLAINTEXT", "ssl": "SSL", "sasl_ssl": "SASL_SSL", "mtls": "SSL"}
SCRAM_MECHANISM = "SCRAM-SHA-512"
SCRAM_USER = "fastsource"
LISTENER = "SECURED"
SERVER_NAMES = ("127.0.0.1", "localhost")


def check_security(mode: str | None) -> str | None:
    """`mode` if it names a secured listener (or is None); BrokerError otherwise."""
    if mode is not None and mode not in SECURITY_MODES:
        raise BrokerError(f"unknown security mode {mode!r}: choose one of {', '.join(SECURITY_MODES)}")
    return mode


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


def _one_line(pem: str) -> str:
    """PEM text as one properties-file value (Java reads `\\n` as a line break)."""
    return pem.strip().replace("\n", "\\n")


class SecuredListener:
    """The secured listener of one local broker: `mode` on 127.0.0.1:`port`, its files in `directory`."""

    def __init__(self, mode: str, port: int, directory: Path) -> None:
        self.mode = check_security(mode)
        self.port = port
        self.directory = directory
        self.protocol = PROTOCOLS[mode]
        self.sasl = mode.startswith("sasl_")
        self.tls = mode != "sasl_plaintext"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def _client_file(self) -> Path:
        return self.directory / "client.json"

    def prepare(self) -> dict[str, str]:
        """Make fresh credentials (certificates, SCRAM password) and return the listener's server
        properties; the client properties are kept for `client_properties()`."""
        self.directory.mkdir(parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        server: dict[str, str] = {}
        client = {"bootstrap.servers": self.address, "security.protocol": self.protocol}
        if self.sasl:
            server["listener.name.secured.sasl.enabled.mechanisms"] = SCRAM_MECHANISM
            server[f"listener.name.secured.{SCRAM_MECHANISM.lower()}.sasl.jaas.config"] = (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;")
            client.update({"sasl.mechanism": SCRAM_MECHANISM, "sasl.username": SCRAM_USER,
                           "sasl.password": secrets.token_urlsafe(24)})
        if self.tls:
            from fastsource.broker.tls import CertificateAuthority

            ca = CertificateAuthority()
            ca_path = self.directory / "ca.pem"
            ca_path.write_text(ca.certificate)
            served = ca.issue("localhost", SERVER_NAMES)
            server.update({
                "listener.name.secured.ssl.keystore.type": "PEM",
                "listener.name.secured.ssl.keystore.certificate.chain": _one_line(served.certificate),
                "listener.name.secured.ssl.keystore.key": _one_line(served.key),
            })
            client["ssl.ca.location"] = str(ca_path)
            if self.mode == "mtls":
                cert, key = ca.issue(SCRAM_USER, client=True).write(self.directory, "client")
                server.update({
                    "listener.name.secured.ssl.client.auth": "required",
                    "listener.name.secured.ssl.truststore.type": "PEM",
                    "listener.name.secured.ssl.truststore.certificates": _one_line(ca.certificate),
                })
                client.update({"ssl.certificate.location": str(cert), "ssl.key.location": str(key)})
        _write_private(self._client_file, json.dumps(client))
        return server

    def client_properties(self) -> dict[str, str]:
        """The librdkafka properties that reach this listener (with the SCRAM password)."""
        try:
            return json.loads(self._client_file.read_text())
        except (OSError, ValueError) as exc:
            raise BrokerError(f"the client properties of the secured listener on {self.address} "
                              f"are not readable from {self._client_file}: {exc}") from None

    def create_user(self, plaintext_address: str, timeout: float) -> None:
        """Create (or reset) the SCRAM user through the PLAINTEXT listener's admin API."""
        if not self.sasl:
            return
        from confluent_kafka.admin import (AdminClient, ScramCredentialInfo, ScramMechanism,
                                           UserScramCredentialUpsertion)

        password = self.client_properties()["sasl.password"].encode()
        admin = AdminClient({"bootstrap.servers": plaintext_address, "log_level": 0})
        upsert = UserScramCredentialUpsertion(
            SCRAM_USER, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192), password)
        try:
            admin.alter_user_scram_credentials([upsert], request_timeout=timeout)[SCRAM_USER].result()
        except Exception as exc:
            raise BrokerError(f"creating the SCRAM user {SCRAM_USER!r} on {plaintext_address} "
                              f"failed: {exc}") from None
