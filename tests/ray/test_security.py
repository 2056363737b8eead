"""fastsource.ray.read_kafka through each secured listener of the launcher (SCRAM over SASL_PLAINTEXT
and SASL_SSL, TLS, mutual TLS), on a local Ray: every record exact, and the password and private key
absent from the dataset's repr and Ray's session logs."""
from __future__ import annotations

from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'fastsource[ray]')")

import fastsource.ray as fray  # noqa: E402
from fastsource.broker import SECURITY_MODES  # noqa: E402


@pytest.mark.parametrize("mode", SECURITY_MODES)
def test_a_ray_read_through_each_listener_is_exact(mode, ray_local, secured_listener):
    secured = secured_listener(mode)
    topic = secured.topic(2, 250)
    ds = fray.read_kafka(topic, bootstrap_servers=secured.address, consumer_config=secured.properties,
                         include_headers=False).materialize()
    rows = sorted((r["partition"], r["offset"], r["key"], r["value"]) for r in ds.take_all())
    assert rows == secured.expected(2, 250)
    secured.assert_no_secret(repr(ds), str(ds.stats()))
    session = Path(ray._private.worker._global_node.get_session_dir_path()) / "logs"
    for log in session.rglob("*"):
        if log.is_file() and log.stat().st_size < 64 << 20:
            data = log.read_bytes()
            assert not any(s.encode() in data for s in secured.secrets), f"a secret leaked into {log}"
