"""Type stub of the compiled Avro decoder (fastsource/formats/_avro.pyx)."""
from typing import Any, Optional

import pyarrow as pa

OPCODES: dict[str, int]
ERRORS: dict[str, int]

class Plan:
    def __init__(self, words: list[int], consts: bytes) -> None: ...

def decode(raw: pa.Array, layout: list[tuple[Any, ...]], plans: dict[int, Optional[Plan]],
           framed: bool) -> tuple[Optional[pa.Array], Optional[tuple[int, int, int, int, int]]]: ...
