"""Console output: records as JSON lines (for other programs) or an aligned table (for people).

JSON lines: one object per record with `topic`, `partition`, `offset`, `timestamp` (epoch ms),
`key`, `value` and, when read, `headers` (a list of `{"key", "value"}`). Binary bytes that are valid
UTF-8 are written as text; other bytes as base64 under `key_base64` / `value_base64` instead of `key` /
`value`, so a field never changes its type. Null stays null. Decoded JSON values are nested objects.
"""
from __future__ import annotations

import base64
import datetime as dt
import json
import shutil
import sys
from typing import Any, Iterable, Optional, Sequence, TextIO

# Rows turned into Python objects at a time, so that a large batch costs no large list of dicts.
CHUNK_ROWS = 1024


def _put_bytes(out: dict[str, Any], name: str, value: Any) -> None:
    if isinstance(value, (bytes, bytearray)):
        try:
            out[name] = value.decode("utf-8")
        except UnicodeDecodeError:
            out[f"{name}_base64"] = base64.b64encode(value).decode("ascii")
    else:
        out[name] = value


def record_json(row: dict[str, Any]) -> dict[str, Any]:
    """A record (a row of a fastsource batch) as a JSON-ready dict, bytes kept lossless."""
    ts = row["timestamp"]
    out: dict[str, Any] = {"topic": row["topic"], "partition": row["partition"], "offset": row["offset"],
                           "timestamp": None if ts is None else round(ts.timestamp() * 1000)}
    _put_bytes(out, "key", row["key"])
    _put_bytes(out, "value", row["value"])
    if "headers" in row:
        headers = []
        for header in row["headers"] or []:
            item: dict[str, Any] = {"key": header["key"]}
            _put_bytes(item, "value", header["value"])
            headers.append(item)
        out["headers"] = headers
    if "error" in row:
        out["error"] = row["error"]
    return out


def _json_default(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode("ascii")
    return str(value)


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, default=_json_default, separators=(",", ":"))


def _chunks(batch: Any) -> Iterable[list[dict[str, Any]]]:
    for start in range(0, batch.num_rows, CHUNK_ROWS):
        yield batch.slice(start, CHUNK_ROWS).to_pylist()


def write_jsonl(batch: Any, out: TextIO) -> None:
    """Every record of `batch` as one JSON line."""
    for rows in _chunks(batch):
        out.write("".join(dumps(record_json(row)) + "\n" for row in rows))


def _cell(value: Any) -> str:
    if value is None:
        return "∅"
    if isinstance(value, (bytes, bytearray)):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            return repr(bytes(value))
    elif isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    elif not isinstance(value, str):
        value = dumps(value)
    return value.replace("\n", "\\n").replace("\t", "\\t")


class RecordTable:
    """Records as aligned lines for a terminal: partition, offset, time (UTC), key, value; long keys
    and values are cut to the terminal's width."""

    def __init__(self, out: TextIO, multiple_topics: bool) -> None:
        self.out = out
        self.multiple_topics = multiple_topics
        self.width = shutil.get_terminal_size((120, 24)).columns
        self._header = False

    def write(self, batch: Any) -> None:
        if not self._header:
            self.out.write(self._line(["topic"] if self.multiple_topics else [], "part", "offset",
                                      "timestamp (UTC)", "key", "value") + "\n")
            self._header = True
        for rows in _chunks(batch):
            self.out.write("".join(
                self._line([row["topic"]] if self.multiple_topics else [], str(row["partition"]),
                           str(row["offset"]), _cell(row["timestamp"]), _cell(row["key"]),
                           _cell(row["value"])) + "\n" for row in rows))

    def _line(self, topic: list[str], partition: str, offset: str, ts: str, key: str, value: str) -> str:
        head = "  ".join([*(t[:24].ljust(24) for t in topic), partition.rjust(4), offset.rjust(10),
                          ts.ljust(23)])
        room = max(self.width - len(head) - 4, 20)
        key_width = max(8, min(24, room // 4))
        return f"{head}  {_cut(key, key_width).ljust(key_width)}  {_cut(value, room - key_width)}"


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[:max(width - 1, 0)] + "…"


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[str], out: Optional[TextIO] = None,
                right: Sequence[str] = ()) -> None:
    """`rows` as an aligned table with a header (numbers right-aligned)."""
    out = out or sys.stdout
    cells = [[_cell(row.get(c)) if row.get(c) is not None else "-" for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if c in right else v.ljust(w)
                         for v, w, c in zip(values, widths, columns)).rstrip()

    out.write(line(columns) + "\n")
    for row in cells:
        out.write(line(row) + "\n")


def print_jsonl(rows: Iterable[dict[str, Any]], out: Optional[TextIO] = None) -> None:
    out = out or sys.stdout
    for row in rows:
        out.write(dumps(row) + "\n")
