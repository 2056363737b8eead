"""Shared fixtures. Integration tests get a real broker: FASTSOURCE_BOOTSTRAP if set, otherwise one
started here with the project's launcher (and stopped at the end of the session) for each Kafka
version in FASTSOURCE_KAFKA_VERSIONS (default: every tested version, see
fastsource.broker.TESTED_KAFKA_VERSIONS); tests under tests/faults and tests/ray, and tests marked
`one_kafka_version`, run against the default version only. Tests marked `kfake` also run against
franz-go's kfake (a 3-broker cluster started once per session). Likewise a real Schema Registry:
FASTSOURCE_SCHEMA_REGISTRY if set, otherwise a local one started on first use."""
from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import uuid
from pathlib import Path

import pytest

# A local Ray started by the tests (and the examples and benchmarks they run) binds and connects on
# loopback only: by default Ray swaps 127.0.0.1 for the host's own address. Read when ray is imported.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


# Ports handed to the suite's brokers and the logs of its kfake clusters, to check that none is left behind.
_HANDED_OUT: list[int] = []
_KFAKE_LOGS: list[Path] = []


def _free_port_pair(count: int = 2) -> int:
    """A free port whose `count - 1` successors are free too (controller, secured listener), below
    the kernel's ephemeral range (32768+) so that no outgoing connection can take one while the
    broker starts."""
    import random

    for _ in range(200):
        port = random.randrange(20000, 32000)
        try:
            for candidate in range(port, port + count):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        _HANDED_OUT.append(port)
        return port
    raise RuntimeError("no free pair of ports on 127.0.0.1")


def _kafka_versions() -> list[str]:
    from fastsource.broker import TESTED_KAFKA_VERSIONS

    given = os.environ.get("FASTSOURCE_KAFKA_VERSIONS", "")
    return [v.strip() for v in given.split(",") if v.strip()] or list(TESTED_KAFKA_VERSIONS)


def pytest_configure(config):
    config.addinivalue_line("markers", "one_kafka_version: run against the default Kafka version "
                                       "only (implied for tests/faults and tests/ray)")


@pytest.fixture(scope="session", autouse=True)
def no_run_directory_left_behind():
    """Every broker the suite starts on a port it handed out leaves no `run/<port>/` directory
    under FASTSOURCE_HOME behind, and no kfake cluster its log (checked at the end of the session)."""
    from fastsource.broker import home

    before = set(os.listdir(home() / "run")) if (home() / "run").is_dir() else set()
    yield
    left = sorted([str(p) for p in _HANDED_OUT
                   if str(p) not in before and (home() / "run" / str(p)).exists()]
                  + [log.name for log in _KFAKE_LOGS if log.exists()])
    assert not left, f"brokers of the test suite left their run directories behind: {left}"


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
    """A test that uses `bootstrap` runs against each Kafka version (the long fault tests and the Ray
    tests against the default one only), and, when marked `kfake`, against kfake too."""
    if "bootstrap" not in metafunc.fixturenames or any(
            "bootstrap" in str(m.args[0]) for m in metafunc.definition.iter_markers("parametrize")):
        return  # not a broker test, or the test names its broker itself (kfake-only tests)
    if os.environ.get("FASTSOURCE_BOOTSTRAP"):
        params = ["kafka"]
    else:
        versions = _kafka_versions()
        folder = Path(str(metafunc.definition.path)).parent.name
        if folder in ("faults", "ray") or metafunc.definition.get_closest_marker("one_kafka_version"):
            versions = versions[:1]
        params = [f"kafka-{v}" for v in versions]
    if metafunc.definition.get_closest_marker("kfake"):
        params.append("kfake")
    metafunc.parametrize("bootstrap", params, indirect=True, ids=params)


@pytest.fixture
def bootstrap(request) -> str:
    """The bootstrap address of the Kafka this test runs against: `kafka-<version>` (a broker of the
    session per version), `kafka` (FASTSOURCE_BOOTSTRAP's) or `kfake`."""
    param = getattr(request, "param", "kafka")
    if param == "kfake":
        return request.getfixturevalue("kfake_bootstrap")
    if param == "kafka":
        return request.getfixturevalue("kafka_bootstrap")
    return request.getfixturevalue("kafka_brokers")(param.removeprefix("kafka-"))


@pytest.fixture(scope="session")
def kfake_cluster():
    """franz-go's kfake, 3 brokers on loopback, for the session (built with Go on first use)."""
    from fastsource.broker.kfake import KfakeCluster

    with KfakeCluster(brokers=3) as cluster:
        _KFAKE_LOGS.append(cluster.log_file)
        yield cluster


@pytest.fixture(scope="session")
def kfake_bootstrap(kfake_cluster) -> str:
    return kfake_cluster.address


# The brokers this session started, by address (for tests of the launcher itself).
_SESSION_BROKERS: dict = {}


@pytest.fixture(scope="session")
def kafka_brokers():
    """kafka_brokers(version) -> the address of this session's broker of that Apache Kafka version
    (FASTSOURCE_BOOTSTRAP's whatever the version), started on first use, stopped and wiped at the end."""
    given = os.environ.get("FASTSOURCE_BOOTSTRAP")
    from fastsource.broker import LocalBroker

    started: dict = {}

    def get(version: str) -> str:
        if given:
            return given
        if version not in started:
            data_dir = tempfile.mkdtemp(prefix="fastsource-test-broker-")
            broker = LocalBroker(port=_free_port_pair(), data_dir=data_dir, kafka_version=version)
            started[version] = broker
            _SESSION_BROKERS[broker.start()] = broker
        return started[version].address

    yield get
    for broker in started.values():
        _SESSION_BROKERS.pop(broker.address, None)
        data_dir = broker.data_dir
        broker.stop()
        broker.wipe()  # its data and its run directory under FASTSOURCE_HOME
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_brokers) -> str:
    """The session's broker of the default Kafka version (for module-scoped fixtures)."""
    return kafka_brokers(_kafka_versions()[0])


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
def local_broker(bootstrap):
    """The LocalBroker behind `bootstrap` (the test skips on a cluster given by FASTSOURCE_BOOTSTRAP)."""
    broker = _SESSION_BROKERS.get(bootstrap)
    if broker is None:
        pytest.skip("FASTSOURCE_BOOTSTRAP names a cluster this session did not start")
    return broker


class Secured:
    """One secured listener of a test broker: the broker, the address and librdkafka properties that
    reach the listener, its secrets, and helpers to fill topics and check that no secret leaked."""

    def __init__(self, mode: str, broker) -> None:
        self.mode = mode
        self.broker = broker
        self.properties = broker.client_properties()
        self.address = self.properties.pop("bootstrap.servers")

    @property
    def secrets(self) -> list[str]:
        """The SCRAM password and the lines of the client's private key."""
        found = [self.properties["sasl.password"]] if "sasl.password" in self.properties else []
        if "ssl.key.location" in self.properties:
            found += [line for line in Path(self.properties["ssl.key.location"]).read_text().splitlines()
                      if "PRIVATE KEY" not in line and line.strip()]
        return found

    def topic(self, partitions: int, per_partition: int) -> str:
        """A new topic (created over PLAINTEXT) filled through the secured listener: key b"k<i>",
        value b"<partition>-<i>"."""
        from confluent_kafka import Producer
        from confluent_kafka.admin import AdminClient, NewTopic

        name = f"sec-{self.mode}-{uuid.uuid4().hex[:8]}"
        admin = AdminClient({"bootstrap.servers": self.broker.address, "log_level": 0})
        admin.create_topics([NewTopic(name, partitions, 1)])[name].result(60)
        producer = Producer({**self.properties, "bootstrap.servers": self.address, "log_level": 0,
                             "linger.ms": 5})
        for p in range(partitions):
            for i in range(per_partition):
                producer.produce(name, key=b"k%d" % i, value=b"%d-%d" % (p, i), partition=p)
        assert producer.flush(60) == 0
        return name

    @staticmethod
    def expected(partitions: int, per_partition: int) -> list[tuple]:
        """(partition, offset, key, value) of every record `topic()` wrote."""
        return [(p, i, b"k%d" % i, b"%d-%d" % (p, i))
                for p in range(partitions) for i in range(per_partition)]

    def assert_no_secret(self, *texts: str, also: tuple[str, ...] = ()) -> None:
        for text in texts:
            for secret in (*self.secrets, *also):
                assert secret not in text, "a secret leaked"

    def assert_no_secret_in_files(self, directory: Path) -> None:
        files = [f for f in Path(directory).rglob("*") if f.is_file()]
        assert files
        for path in files:
            data = path.read_bytes()
            for secret in self.secrets:
                assert secret.encode() not in data, f"a secret leaked into {path}"


@pytest.fixture(scope="session")
def secured_listener():
    """secured_listener(mode, kafka_version=default) -> Secured: a broker with a secured listener
    (`mode` in fastsource.broker.SECURITY_MODES), started on first use, one per mode and version
    for the whole session, stopped and wiped at its end."""
    from fastsource.broker import KAFKA_VERSION, LocalBroker

    started: dict = {}

    def get(mode: str, kafka_version: str = KAFKA_VERSION) -> Secured:
        if (mode, kafka_version) not in started:
            broker = LocalBroker(port=_free_port_pair(3),
                                 data_dir=tempfile.mkdtemp(prefix=f"fastsource-test-{mode}-"),
                                 kafka_version=kafka_version, security=mode)
            started[mode, kafka_version] = broker
            broker.start()
        return Secured(mode, started[mode, kafka_version])

    yield get
    for broker in started.values():
        data = broker.data_dir
        broker.stop()
        broker.wipe()
        shutil.rmtree(data, ignore_errors=True)


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
