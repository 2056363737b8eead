"""The launcher's options without a broker: Kafka versions it accepts and the jars and logging each
needs, the certificates it makes, and -X parsing that never echoes a mistyped secret."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fastsource.broker import TESTED_KAFKA_VERSIONS, _logging_flag, _pom, check_kafka_version
from fastsource.cli.common import client_properties
from fastsource.errors import BrokerError, ConfigError


def test_kafka_versions_from_3_9_are_accepted_and_older_or_malformed_ones_refused():
    for version in (*TESTED_KAFKA_VERSIONS, "3.9.0", "4.0.0", "4.2.0"):
        assert check_kafka_version(version) == version
    for version in ("3.8.1", "2.8.0", "4.1", "latest", "4.1.1-rc1"):
        with pytest.raises(BrokerError, match=f"{version!r} cannot be launched.*tested: 4.1.1, 3.9.2"):
            check_kafka_version(version)


def test_kafka_3_gets_reload4j_and_kafka_4_gets_log4j2():
    three, four = _pom("3.9.2"), _pom("4.1.1")
    assert "<artifactId>kafka_2.13</artifactId><version>3.9.2</version>" in three
    assert "slf4j-reload4j" in three and "log4j-core" not in three
    assert "log4j-slf4j-impl" in four and "log4j-core" in four and "reload4j" not in four
    assert _logging_flag("3.9.2").startswith("-Dlog4j.configuration=file:")
    assert _logging_flag("4.1.1").startswith("-Dlog4j2.configurationFile=")
    for flag in (_logging_flag("3.9.2"), _logging_flag("4.1.1")):
        assert Path(flag.split("=", 1)[1].removeprefix("file:")).is_file()


def test_the_server_certificate_names_loopback_and_is_signed_by_the_ca():
    x509 = pytest.importorskip("cryptography.x509")
    from fastsource.broker.tls import CertificateAuthority

    ca = CertificateAuthority()
    server = x509.load_pem_x509_certificate(ca.issue("localhost", ("127.0.0.1", "localhost")).certificate.encode())
    ca_cert = x509.load_pem_x509_certificate(ca.certificate.encode())
    server.verify_directly_issued_by(ca_cert)
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    other = x509.load_pem_x509_certificate(CertificateAuthority("other").certificate.encode())
    with pytest.raises(Exception):
        server.verify_directly_issued_by(other)


def test_x_items_without_equals_are_refused_without_echoing_a_secret():
    assert client_properties(["a.b=c=d", "e="]) == {"a.b": "c=d", "e": ""}
    with pytest.raises(ConfigError, match="bad -X 'sasl.password'"):
        client_properties(["sasl.password"])
    with pytest.raises(ConfigError) as refused:
        client_properties(["security.protocol=SSL", "sasl.password:hunter2"])
    assert "hunter2" not in str(refused.value) and "#2" in str(refused.value)


def test_the_cli_refuses_an_unknown_security_mode_or_kafka_version():
    cli = str(Path(sys.executable).parent / "fastsource")
    for args in (["--security", "kerberos"], ["--kafka-version", "3.8.0"]):
        done = subprocess.run([cli, "broker", "start", "--port", "1", *args], capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert args[1] in done.stderr
