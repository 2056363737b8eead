"""fastsource through each secured listener of the project's launcher (SASL_PLAINTEXT and SASL_SSL with
SCRAM-SHA-512, TLS, mutual TLS): read_all, a checkpointed stream with restore and group commits, the
CLI with -X properties, `topics` and `lag`, every record exact. And the ways a secured connection
fails, each within 10 s with an AuthenticationError naming the address and the cause; no secret
(SCRAM password, private key) in any message, log line, repr, checkpoint or dataset file."""
from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from confluent_kafka import Consumer, TopicPartition

import fastsource as fs
from fastsource.broker import SECURITY_MODES, TESTED_KAFKA_VERSIONS
from fastsource.broker.tls import CertificateAuthority
from fastsource.kafka.reader.split_reader import KafkaPartitionSplitReader, consumer_config
from fastsource.kafka.split import KafkaPartitionSplit

LIMIT_S = 10


def records(table) -> list[tuple]:
    return sorted(zip(table.column("partition").to_pylist(), table.column("offset").to_pylist(),
                      table.column("key").to_pylist(), table.column("value").to_pylist()))


@pytest.fixture(params=SECURITY_MODES)
def secured(request, secured_listener):
    return secured_listener(request.param)


def test_the_launcher_prints_properties_that_reach_the_secured_listener(secured):
    """The JSON properties name the listener on port + 2, the protocol of the mode, SCRAM for SASL,
    the CA for TLS and the client certificate for mTLS, and the files they name exist."""
    props = secured.properties
    assert secured.address == f"127.0.0.1:{secured.broker.port + 2}"
    assert props["security.protocol"] == {"sasl_plaintext": "SASL_PLAINTEXT", "ssl": "SSL",
                                          "sasl_ssl": "SASL_SSL", "mtls": "SSL"}[secured.mode]
    assert (props.get("sasl.mechanism") == "SCRAM-SHA-512") == secured.mode.startswith("sasl_")
    assert ("ssl.ca.location" in props) == (secured.mode != "sasl_plaintext")
    assert ("ssl.certificate.location" in props) == (secured.mode == "mtls")
    for key in ("ssl.ca.location", "ssl.certificate.location", "ssl.key.location"):
        if key in props:
            assert Path(props[key]).is_file()
    secured.assert_no_secret(repr(secured.broker))


def test_read_all_through_each_listener_is_exact(secured, caplog):
    caplog.set_level(logging.DEBUG)
    topic = secured.topic(3, 200)
    source = fs.KafkaSource(secured.address, topics=[topic], properties=secured.properties)
    table = source.read_all(parallelism=2)
    assert records(table) == secured.expected(3, 200)
    secured.assert_no_secret(repr(source), caplog.text)


def test_read_all_through_sasl_ssl_on_the_other_kafka_versions(secured_listener):
    """SASL_SSL with SCRAM-SHA-512 on every tested Kafka version besides the default (3.9.x)."""
    for version in TESTED_KAFKA_VERSIONS[1:]:
        secured = secured_listener("sasl_ssl", version)
        topic = secured.topic(2, 100)
        source = fs.KafkaSource(secured.address, topics=[topic], properties=secured.properties)
        assert records(source.read_all()) == secured.expected(2, 100), version


def test_a_checkpointed_stream_restores_and_commits_its_group(secured, tmp_path, caplog):
    """Three batches, a checkpoint, close; the restored stream reads the rest: every record once.
    The group's committed offsets (read back through the secured listener) reach the end."""
    caplog.set_level(logging.DEBUG)
    topic = secured.topic(2, 300)
    group = f"g-{uuid.uuid4().hex[:8]}"
    source = fs.KafkaSource(secured.address, topics=[topic], group_id=group,
                            properties=secured.properties, batch_limits=fs.BatchLimits(max_rows=50))
    first = []
    with source.open(parallelism=2, checkpoint_dir=tmp_path) as stream:
        while len(first) < 3:
            batch = stream.poll(5.0)
            if batch is not None:
                first.append(batch)
        stream.checkpoint()
    with source.open(parallelism=2, checkpoint_dir=tmp_path) as stream:
        assert stream.restored_checkpoint_id is not None
        rest = list(stream)
    assert records(pa.Table.from_batches(first + rest)) == secured.expected(2, 300)
    committed = source.admin().committed(group, None)
    assert committed == {(topic, 0): 300, (topic, 1): 300}
    secured.assert_no_secret_in_files(tmp_path)
    secured.assert_no_secret(caplog.text, repr(source))


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).parent / "fastsource"), *args], capture_output=True,
                          text=True, timeout=120)


def x_options(properties: dict) -> list[str]:
    return [arg for key, value in properties.items() for arg in ("-X", f"{key}={value}")]


def test_the_cli_reads_lists_topics_and_shows_lag_with_x_properties(secured, tmp_path):
    topic = secured.topic(2, 150)
    x = x_options(secured.properties)
    dataset = tmp_path / "out"
    read = cli("read", "-b", secured.address, *x, "-t", topic, "-o", str(dataset), "--no-progress")
    assert read.returncode == 0, read.stderr
    assert records(pq.read_table(sorted(dataset.rglob("*.parquet")))) == secured.expected(2, 150)

    shown = cli("topics", "-b", secured.address, *x, "-t", topic, "--console-format", "jsonl")
    assert shown.returncode == 0, shown.stderr
    assert [(r["partition"], r["high"]) for r in map(json.loads, shown.stdout.splitlines())] == [
        (0, 150), (1, 150)]

    group = f"g-{uuid.uuid4().hex[:8]}"
    consumer = Consumer({**secured.properties, "bootstrap.servers": secured.address,
                         "group.id": group, "log_level": 0})
    consumer.commit(offsets=[TopicPartition(topic, 0, 100), TopicPartition(topic, 1, 150)],
                    asynchronous=False)
    consumer.close()
    lag = cli("lag", "-b", secured.address, *x, "-g", group, "-t", topic, "--console-format", "jsonl")
    assert lag.returncode == 0, lag.stderr
    assert [(r["partition"], r["committed"], r["lag"]) for r in map(json.loads, lag.stdout.splitlines())] \
        == [(0, 100, 50), (1, 150, 0)]
    for done in (read, shown, lag):
        secured.assert_no_secret(done.stdout, done.stderr)
    secured.assert_no_secret_in_files(tmp_path)


def test_the_documented_sasl_ssl_configuration_reads(secured_listener):
    """docs/security.md shows a SASL_SSL configuration in a text block (it needs a secured broker, so
    the generic docs test does not run it): this runs exactly that block against the launcher's
    SASL_SSL listener, with the launcher's address, password and CA file put in."""
    secured = secured_listener("sasl_ssl")
    props = secured.broker.client_properties()
    page = (Path(__file__).resolve().parents[2] / "docs" / "security.md").read_text()
    block = re.search(r"<!-- tested by test_the_documented_sasl_ssl_configuration_reads -->\s*"
                      r"```text\n(.*?)```", page, re.S).group(1)
    topic = secured.topic(1, 10)
    code = (block.replace("127.0.0.1:19094", props["bootstrap.servers"])
            .replace("PASSWORD-FROM-THE-JSON-LINE", props["sasl.password"])
            .replace("/root/.cache/fastsource/run/19092/security/ca.pem", props["ssl.ca.location"])
            .replace('"events"', repr(topic)))
    namespace: dict = {}
    exec(compile(code, "docs/security.md", "exec"), namespace)
    assert records(namespace["table"]) == secured.expected(1, 10)


# ------------------------------------------------------------------ failures


@pytest.fixture(scope="module")
def stranger(tmp_path_factory) -> dict:
    """A CA the brokers do not know, and a client certificate it signed."""
    directory = tmp_path_factory.mktemp("stranger")
    ca = CertificateAuthority("a CA nobody trusts")
    (directory / "ca.pem").write_text(ca.certificate)
    cert, key = ca.issue("intruder", client=True).write(directory, "client")
    return {"ca": str(directory / "ca.pem"), "cert": str(cert), "key": str(key)}


def _without(props: dict, *prefixes: str) -> dict:
    return {k: v for k, v in props.items() if not k.startswith(prefixes)}


# (mode of the broker, case, how the client is set up: (address, properties), what the error says)
FAILURES = {
    "wrong SCRAM password": ("sasl_ssl", lambda s, o: (s.address, {
        **s.properties, "sasl.password": "not-" + s.properties["sasl.password"]}),
        "invalid credentials with SASL mechanism SCRAM-SHA-512"),
    "wrong SCRAM password without TLS": ("sasl_plaintext", lambda s, o: (s.address, {
        **s.properties, "sasl.password": "not-" + s.properties["sasl.password"]}),
        "invalid credentials with SASL mechanism SCRAM-SHA-512"),
    "unknown user": ("sasl_ssl", lambda s, o: (s.address, {**s.properties, "sasl.username": "nobody"}),
                     "invalid credentials"),
    "a CA that did not sign the server certificate": (
        "ssl", lambda s, o: (s.address, {**s.properties, "ssl.ca.location": o["ca"]}),
        "certificate verify failed.*unable to get local issuer certificate"),
    "a host name the certificate does not name": (
        # 127.1 reaches 127.0.0.1, but the certificate names only 127.0.0.1 and localhost
        "ssl", lambda s, o: (s.address.replace("127.0.0.1", "127.1"),
                             {**s.properties, "ssl.endpoint.identification.algorithm": "https"}),
        "Hostname mismatch, certificate is not valid for '127.1'"),
    "a client certificate the broker does not trust": (
        "mtls", lambda s, o: (s.address, {**s.properties, "ssl.certificate.location": o["cert"],
                                          "ssl.key.location": o["key"]}),
        "did not accept the client certificate"),
    "no client certificate where one is required": (
        "mtls", lambda s, o: (s.address, _without(s.properties, "ssl.certificate.", "ssl.key.")),
        "did not accept the client certificate"),
    "a TLS client against a PLAINTEXT port": (
        "ssl", lambda s, o: (s.broker.address, s.properties), "SSL handshake failed"),
    "a PLAINTEXT client against a TLS port": (
        "ssl", lambda s, o: (s.address, {}),
        "is a TLS listener but security.protocol is PLAINTEXT"),
    "a SASL_PLAINTEXT client against a SASL_SSL port": (
        "sasl_ssl", lambda s, o: (s.address, {**_without(s.properties, "ssl."),
                                              "security.protocol": "SASL_PLAINTEXT"}),
        "is a TLS listener but security.protocol is SASL_PLAINTEXT: set security.protocol=SASL_SSL"),
}


@pytest.mark.parametrize("case", list(FAILURES))
def test_a_security_failure_is_named_within_10_s_without_secrets(case, secured_listener, stranger,
                                                                 tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    mode, setup, cause = FAILURES[case]
    secured = secured_listener(mode)
    address, properties = setup(secured, stranger)
    source = fs.KafkaSource(address, topics=["any"], properties=properties)
    started = time.monotonic()
    with pytest.raises(fs.AuthenticationError) as failure:
        source.read_all(parallelism=1)
    assert time.monotonic() - started < LIMIT_S
    message = str(failure.value)
    assert address in message and re.search(cause, message), message
    chained = failure.value.__cause__
    secured.assert_no_secret(message, repr(failure.value), str(chained), repr(source), caplog.text,
                             also=tuple(v for k, v in properties.items() if k == "sasl.password"))


@pytest.mark.parametrize("case", ["wrong SCRAM password", "a client certificate the broker does not trust"])
def test_a_reader_names_a_security_failure_within_10_s(case, secured_listener, stranger):
    """The compiled fetch path (a split reader on its own, without discovery first) fails the same
    way."""
    mode, setup, cause = FAILURES[case]
    secured = secured_listener(mode)
    address, properties = setup(secured, stranger)
    reader = KafkaPartitionSplitReader(consumer_config(address, None, properties))
    try:
        reader.add_splits([KafkaPartitionSplit("any", 0, 0, None)])
        started = time.monotonic()
        with pytest.raises(fs.AuthenticationError) as failure:
            while time.monotonic() - started < 30:
                reader.fetch()
        assert time.monotonic() - started < LIMIT_S
        assert address in str(failure.value) and re.search(cause, str(failure.value))
        secured.assert_no_secret(str(failure.value), also=tuple(
            v for k, v in properties.items() if k == "sasl.password"))
    finally:
        reader.close()


def test_the_cli_names_a_wrong_password_in_one_line_without_it(secured_listener, tmp_path):
    secured = secured_listener("sasl_ssl")
    wrong = {**secured.properties, "sasl.password": "not-" + secured.properties["sasl.password"]}
    started = time.monotonic()
    done = cli("read", "-b", secured.address, *x_options(wrong), "-t", "any", "-o",
               str(tmp_path / "out"), "--no-progress")
    assert time.monotonic() - started < 30  # a Python start-up and the failure (well within 10 s)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert secured.address in done.stderr and "invalid credentials" in done.stderr
    secured.assert_no_secret(done.stdout, done.stderr, also=(wrong["sasl.password"],))
