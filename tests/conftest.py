"""Shared fixtures. Integration tests get a real broker: FASTSOURCE_BOOTSTRAP if set, otherwise one
started here with the project's launcher (and stopped at the end of the session). Tests marked
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
