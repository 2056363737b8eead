"""Shared fixtures. Integration tests get a real broker: FASTSOURCE_BOOTSTRAP if set, otherwise one
started here with the project's launcher (and stopped at the end of the session) for each Kafka
version in FASTSOURCE_KAFKA_VERSIONS (default: every tested version, see
fastsource.broker.TESTED_KAFKA_VERSIONS). Tests under tests/faults and tests/ray, and tests marked
`one_kafka_version`, run against the default version only."""
from __future__ import annotations

import os
import shutil
import socket
import tempfile
import uuid
from pathlib import Path

import pytest

# A local Ray started by the tests (and the examples and benchmarks they run) binds and connects on
# loopback only: by default Ray swaps 127.0.0.1 for the host's own address. Read when ray is imported.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


# Ports handed to the suite's brokers, to check that none leaves its run directory behind.
_HANDED_OUT: list[int] = []


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


def pytest_generate_tests(metafunc):
    """Run every test that uses `bootstrap` against each Kafka version, except the long fault tests
    and the Ray tests (default version only)."""
    if "bootstrap" not in metafunc.fixturenames or os.environ.get("FASTSOURCE_BOOTSTRAP"):
        return
    versions = _kafka_versions()
    folder = Path(str(metafunc.definition.path)).parent.name
    if folder in ("faults", "ray") or metafunc.definition.get_closest_marker("one_kafka_version"):
        versions = versions[:1]
    metafunc.parametrize("bootstrap", versions, indirect=True, scope="session",
                         ids=[f"kafka-{v}" for v in versions])


@pytest.fixture(scope="session", autouse=True)
def no_run_directory_left_behind():
    """Every broker the suite starts on a port it handed out leaves no `run/<port>/` directory
    under FASTSOURCE_HOME behind (checked at the end of the session)."""
    from fastsource.broker import home

    before = set(os.listdir(home() / "run")) if (home() / "run").is_dir() else set()
    yield
    left = sorted(str(p) for p in _HANDED_OUT
                  if str(p) not in before and (home() / "run" / str(p)).exists())
    assert not left, f"brokers of the test suite left their run directories behind: {left}"


@pytest.fixture
def free_port() -> int:
    """A port for a broker of the test's own (its controller takes the next one)."""
    return _free_port_pair()


# The brokers this session started, by address (for tests of the launcher itself).
_SESSION_BROKERS: dict = {}


@pytest.fixture(scope="session")
def bootstrap(request) -> str:
    given = os.environ.get("FASTSOURCE_BOOTSTRAP")
    if given:
        yield given
        return
    from fastsource.broker import KAFKA_VERSION, LocalBroker

    data_dir = tempfile.mkdtemp(prefix="fastsource-test-broker-")
    broker = LocalBroker(port=_free_port_pair(), data_dir=data_dir,
                         kafka_version=getattr(request, "param", KAFKA_VERSION))
    address = broker.start()
    _SESSION_BROKERS[address] = broker
    try:
        yield address
    finally:
        _SESSION_BROKERS.pop(address, None)
        broker.stop()
        broker.wipe()  # its data and its run directory under FASTSOURCE_HOME
        shutil.rmtree(data_dir, ignore_errors=True)


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
