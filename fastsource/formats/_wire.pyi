"""Type stub of the compiled Confluent wire-format helpers (fastsource/formats/_wire.pyx)."""
import pyarrow as pa

class Plan:
    def __init__(self, words: list[int], consts: bytes = ...) -> None: ...

def schema_ids(raw: pa.Array) -> list[int]: ...
