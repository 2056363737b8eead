"""Type stub of the compiled Confluent wire-format helpers (fastsource/formats/_wire.pyx)."""
import pyarrow as pa

def schema_ids(raw: pa.Array) -> list[int]: ...
