"""Type stub of the compiled JSON pre-scan (fastsource/formats/_json.pyx)."""
from typing import Optional

import pyarrow as pa

def json_lines(raw: pa.Array, max_depth: int = ...
               ) -> tuple[Optional[pa.Buffer], int, Optional[pa.BooleanArray], Optional[tuple[int, int, int]]]: ...
