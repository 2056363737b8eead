"""Type stub of the compiled column builders (fastsource/formats/_builders.pyx)."""
from typing import Any

import pyarrow as pa

LAYOUT_FIELDS: tuple[str, ...]

class ColumnSet:
    """The builders of one batch, one per node of a layout of (kind, width, nullable, children,
    arrow type, dictionary, null child) tuples."""
    def __init__(self, layout: list[tuple[Any, ...]]) -> None: ...
    def finish(self, root: int = ...) -> pa.Array: ...
