"""Type stub of the compiled Avro decoder (fastsource/formats/_avro.pyx)."""
from typing import Any, Optional

import pyarrow as pa

from fastsource.formats._builders import BatchLayout
from fastsource.formats._wire import Plan

OPCODES: dict[str, int]
ERRORS: dict[str, int]

def decode(raw: pa.Array, layout: BatchLayout, plans: dict[int, Optional[Plan]],
           framed: bool) -> tuple[Optional[pa.Array], Optional[tuple[int, int, int, int, int]]]: ...
