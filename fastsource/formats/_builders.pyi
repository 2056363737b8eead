"""Type stub of the compiled column builders (fastsource/formats/_builders.pyx)."""
from typing import Any, Iterable

import pyarrow as pa

LAYOUT_FIELDS: tuple[str, ...]
POOL_LIMITS: dict[str, int]

class BatchLayout:
    """A layout of (kind, width, nullable, children, arrow type, dictionary, null child) tuples, one
    per node, and what each node's buffers held per row in the layout's last batch."""
    nodes: list[tuple[Any, ...]]
    def __init__(self, nodes: list[tuple[Any, ...]]) -> None: ...
    def __len__(self) -> int: ...
    def __reduce__(self) -> tuple[Any, ...]: ...

class ColumnSet:
    """The builders of one batch, one per node of a layout, reserved for `rows` rows."""
    def __init__(self, layout: BatchLayout, rows: int = ...) -> None: ...
    def finish(self, root: int = ...) -> pa.Array: ...

def string_array(values: Iterable[str]) -> pa.Array:
    """A string array built from its buffers (pa.array(list) would import pandas)."""

def release_pool() -> None:
    """Free every block kept for later batches."""

def pool_stats() -> tuple[int, int]:
    """(blocks, bytes) kept for later batches."""
