"""One-shot TLS checks that turn librdkafka's vague security failures into a cause.

librdkafka reports a PLAINTEXT client talking to a TLS listener only as a broker that does not answer,
and any failed certificate check as "certificate verify failed ... verify that ssl.ca.location is
correctly configured", whether the issuer is unknown or the host name does not match. When a client
has failed that way, one handshake of Python's own TLS stack against the same address (with the same
CA file and host-name rule) tells which it is. Nothing here sends Kafka requests or credentials.
"""
from __future__ import annotations

import socket
import ssl
from typing import Mapping, Optional


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.strip().rpartition(":")
    return host.strip("[]"), int(port)


def speaks_tls(address: str, timeout: float = 1.0) -> bool:
    """Whether `host:port` answers a TLS ClientHello as a TLS server (a handshake, or a TLS alert
    such as a missing client certificate); False when it does not answer TLS or cannot be reached."""
    try:
        host, port = _split(address)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with socket.create_connection((host, port), timeout=timeout) as raw:
            with context.wrap_socket(raw, server_hostname=host):
                return True
    except ssl.SSLError as exc:
        return "ALERT" in (exc.reason or "").upper()
    except (OSError, ValueError):
        return False


def certificate_problem(address: str, properties: Mapping[str, str],
                        timeout: float = 2.0) -> Optional[str]:
    """Why the certificate of `address` fails the client's check (OpenSSL's verify message, e.g.
    "Hostname mismatch, certificate is not valid for 'x'" or "unable to get local issuer
    certificate"), checked with `ssl.ca.pem` or `ssl.ca.location` (else the system CAs) and
    librdkafka's host-name rule; None when the check passes or the address cannot be reached."""
    try:
        host, port = _split(address)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = (properties.get("ssl.endpoint.identification.algorithm", "https")
                                  .lower() == "https")
        ca = properties.get("ssl.ca.location")
        if properties.get("ssl.ca.pem"):
            context.load_verify_locations(cadata=properties["ssl.ca.pem"])
        elif ca and ca != "probe":
            context.load_verify_locations(cafile=ca)
        else:
            context.load_default_certs()
        with socket.create_connection((host, port), timeout=timeout) as raw:
            with context.wrap_socket(raw, server_hostname=host):
                return None
    except ssl.SSLCertVerificationError as exc:
        return exc.verify_message or str(exc)
    except (OSError, ValueError, ssl.SSLError):
        return None
