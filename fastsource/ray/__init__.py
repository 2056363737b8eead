"""fastsource on Ray: `read_kafka` for Ray Data and readers as Ray actors (`RayRuntime`).

An optional extra (`pip install 'fastsource[ray]'`): `import fastsource` never imports Ray; importing
this sub-package without Ray raises an ImportError saying what to install.
"""
from __future__ import annotations

try:
    import ray  # noqa: F401
    import ray.data  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("fastsource.ray needs Ray Data: pip install 'fastsource[ray]'") from exc

from fastsource.ray.datasource import KAFKA_SCHEMA, KafkaDatasource, read_kafka  # noqa: E402
from fastsource.errors import ReaderActorDiedError  # noqa: E402
from fastsource.ray.runtime import RayRuntime  # noqa: E402

__all__ = ["KAFKA_SCHEMA", "KafkaDatasource", "RayRuntime", "ReaderActorDiedError", "read_kafka"]
