"""Shared fixtures. Integration tests get a real broker: FASTSOURCE_BOOTSTRAP if set, otherwise one
started here with the project's launcher (and stopped at the end of the session); likewise a real
Schema Registry: FASTSOURCE_SCHEMA_REGISTRY if set, otherwise a local one started on first use. Tests marked
`kfake` run a second time against franz-go's kfake (a 3-broker cluster started once per session)."""
from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import uuid

import pytest

# A local Ray started by the tests (and the examples and benchmarks they run) binds and connects on
# loopback only: by default Ray swaps 127.0.0.1 for the host's own address. Read when ray is imported.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


def _free_port_pair() -> int:
    """A free port whose successor is free too, below the kernel's ephemeral range (32768+) so that
    no outgoing connection can take it while the broker starts."""
    import random

    for _ in range(200):
        port = random.randrange(20000, 32000)
        try:
            for candidate in (port, port + 1):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port
    raise RuntimeError("no free pair of ports on 127.0.0.1")


@pytest.fixture
def free_port() -> int:
    """A port for a broker of the test's own (its controller takes the next one)."""
    return _free_port_pair()


def _needs_kfake(item) -> bool:
    callspec = getattr(item, "callspec", None)
    return ("kfake_cluster" in getattr(item, "fixturenames", ())
            or (callspec is not None and callspec.params.get("bootstrap") == "kfake"))


def pytest_collection_finish(session):
    """Build the kfake launcher in the background once the selected tests need it (Go takes a minute
    or more the first time), so that the build overlaps the tests before; the fixture waits for it,
    and reports a failed build itself."""
    if any(_needs_kfake(item) for item in session.items):
        from fastsource.broker.kfake import kfake_binary

        def build() -> None:
            try:
                kfake_binary()
            except Exception:
                pass

        threading.Thread(target=build, name="kfake-build", daemon=True).start()


def pytest_generate_tests(metafunc):
    """A test marked `kfake` that uses the broker runs against Apache Kafka and against kfake."""
    if metafunc.definition.get_closest_marker("kfake") and "bootstrap" in metafunc.fixturenames:
        metafunc.parametrize("bootstrap", ["kafka", "kfake"], indirect=True)


@pytest.fixture
def bootstrap(request) -> str:
    """The bootstrap address of the Kafka implementation this test runs against (Apache Kafka unless
    a `kfake` marker parametrized it)."""
    return request.getfixturevalue(f"{getattr(request, 'param', 'kafka')}_bootstrap")


@pytest.fixture(scope="session")
def kfake_cluster():
    """franz-go's kfake, 3 brokers on loopback, for the session (built with Go on first use)."""
    from fastsource.broker.kfake import KfakeCluster

    with KfakeCluster(brokers=3) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def kfake_bootstrap(kfake_cluster) -> str:
    return kfake_cluster.address


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    given = os.environ.get("FASTSOURCE_BOOTSTRAP")
    if given:
        yield given
        return
    from fastsource.broker import LocalBroker

    data_dir = tempfile.mkdtemp(prefix="fastsource-test-broker-")
    broker = LocalBroker(port=_free_port_pair(), data_dir=data_dir)
    address = broker.start()
    try:
        yield address
    finally:
        broker.stop()
        broker.wipe()  # its data and its run directory under FASTSOURCE_HOME
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def schema_registry() -> str:
    """The Confluent-compatible base URL of a real Schema Registry for the session."""
    given = os.environ.get("FASTSOURCE_SCHEMA_REGISTRY")
    if given:
        yield given.rstrip("/")
        return
    from fastsource.registry import LocalRegistry

    registry = LocalRegistry(port=_free_port_pair())
    url = registry.start()
    try:
        yield url
    finally:
        registry.stop()
        registry.wipe()


@pytest.fixture
def make_topic(bootstrap):
    """Create a uniquely named topic without time-based retention: make_topic(partitions=1, **config)."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    created = []

    def make(partitions: int = 1, prefix: str = "t", **config: str) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        # Tests write records with timestamps far in the past; time-based retention would delete them
        # mid-test (the broker checks every 5 minutes).
        config = {"retention.ms": "-1", **config}
        admin.create_topics([NewTopic(name, partitions, 1, config=config)])[name].result()
        created.append(name)
        return name

    yield make
    if created:
        for future in admin.delete_topics(created).values():
            try:
                future.result()
            except Exception:
                pass


@pytest.fixture(scope="module")
def kafka_cluster(tmp_path_factory):
    """A 3-node KRaft cluster of the module's own (fastsource.broker.cluster), stopped and wiped at
    the end of the module; tests may kill nodes and start them again (`start()`)."""
    from fastsource.broker.cluster import LocalCluster

    ports: list[int] = []
    while len(ports) < 3:
        port = _free_port_pair()
        if not {port - 1, port, port + 1} & {p + d for p in ports for d in (0, 1)}:
            ports.append(port)
    cluster = LocalCluster(ports, tmp_path_factory.mktemp("cluster"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def producer(bootstrap):
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "message.max.bytes": 4 << 20})
    yield p
    p.flush(30)


@pytest.fixture(params=["in-process", "pickling"])
def any_transport(request, monkeypatch):
    """Run the test over the in-process transport and over one that pickles and unpickles every
    message between the coordinator and the readers (as a transport between processes would)."""
    from fastsource.runtime.handles import InProcessRuntime
    from fastsource.runtime.transport import InProcessTransport, PicklingTransport

    factory = PicklingTransport if request.param == "pickling" else InProcessTransport
    monkeypatch.setattr("fastsource.source.default_runtime", lambda: InProcessRuntime(factory))
    return request.param


@pytest.fixture
def mock_registry(request):
    """confluent-kafka's in-process mock Schema Registry (unit tests only), one per test, answering an
    id it does not have as Confluent's registry does (HTTP 404, error code 40403; the mock says 40400)."""
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    name = "".join(c if c.isalnum() else "-" for c in request.node.name)
    client = SchemaRegistryClient.new_client({"url": f"mock://{name}"})

    class ConfluentCodes:
        def __getattr__(self, attribute: str):
            return getattr(client, attribute)

        def get_schema(self, schema_id, *args, **kwargs):
            try:
                return client.get_schema(schema_id, *args, **kwargs)
            except SchemaRegistryError as exc:
                if exc.http_status_code == 404:
                    raise SchemaRegistryError(404, 40403, "Schema not found") from exc
                raise

    return ConfluentCodes()


@pytest.fixture
def recreate_topic(bootstrap):
    """recreate_topic(name, partitions=1): delete a topic and create it again under its name (a new
    topic id, KIP-516), waiting until the deletion has taken."""
    import time

    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})

    def recreate(topic: str, partitions: int = 1) -> None:
        admin.delete_topics([topic])[topic].result()
        deadline = time.monotonic() + 60
        while True:
            try:
                admin.create_topics([NewTopic(topic, partitions, 1, config={"retention.ms": "-1"})]
                                    )[topic].result()
                return
            except Exception:  # the deletion has not finished yet
                assert time.monotonic() < deadline, f"{topic} could not be created again"
                time.sleep(0.2)

    return recreate
