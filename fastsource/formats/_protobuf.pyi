"""Type stub of the compiled Protobuf decoder (fastsource/formats/_protobuf.pyx)."""
from typing import Any, Optional

import pyarrow as pa

from fastsource.formats._builders import BatchLayout
from fastsource.formats._wire import Plan

ERRORS: dict[str, int]
LAYOUT: dict[str, int]

def decode(raw: pa.Array, layout: BatchLayout, plan: Plan, known_ids: dict[int, bool], framed: bool,
           max_depth: int) -> tuple[Optional[pa.Array], Optional[tuple[int, int, int, int, int]]]: ...
