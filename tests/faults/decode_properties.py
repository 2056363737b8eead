"""Property-based checks of one format over random and adversarial values, run as a script in a
subprocess by test_poison_values.py so that a crash of a C++ parser fails that test instead of killing
the test run. Usage: python decode_properties.py FORMAT EXAMPLES, FORMAT one of FORMATS.

Every batch either decodes to a valid array of the same length or raises RecordDecodeError at a row of
the batch no later than the first row a reference check (Python's own UTF-8 and JSON) calls poison;
through the emitter, errors="raise" names the coordinates of a record of the batch and
errors="dead_letter" accounts for every record exactly once, in the output or as a dead letter.
"""
from __future__ import annotations

import json
import sys
from typing import Callable, Optional

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastsource.kafka import _consumer
from fastsource.errors import DecodeError
from fastsource.formats import Binary, Format, Json, RecordDecodeError, String
from fastsource.kafka.reader.emitter import KafkaRecordEmitter
from fastsource.base.reader.split_reader import RecordsWithSplitIds

SCHEMA = pa.schema([("a", pa.int64()), ("s", pa.string()), ("n", pa.list_(pa.int64()))])
MAX_DEPTH = 8

FORMATS: dict[str, Callable[[str], Format]] = {
    "binary": lambda errors: Binary(),
    "string": lambda errors: String(errors=errors),
    "json": lambda errors: Json(errors=errors, max_depth=MAX_DEPTH),
    "json-schema": lambda errors: Json(SCHEMA, errors=errors, max_depth=MAX_DEPTH),
}

# --- values ------------------------------------------------------------------------------------------

scalars = st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) \
    | st.text(max_size=8)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=12)
typed_objects = st.fixed_dictionaries({}, optional={"a": st.integers(-2**62, 2**62) | st.none(),
                                                    "s": st.text(max_size=40) | st.none(),
                                                    "n": st.lists(st.integers(-9, 9), max_size=4)})


def dumps(value: object, ascii_only: bool, spaced: bool) -> bytes:
    text = json.dumps(value, ensure_ascii=ascii_only, separators=(", ", ": ") if spaced else (",", ":"))
    return text.encode("utf-8", "surrogatepass")


documents = st.builds(dumps, typed_objects | st.dictionaries(st.text(max_size=4), json_values, max_size=4)
                      | json_values, st.booleans(), st.booleans())


@st.composite
def nested(draw: st.DrawFn) -> bytes:
    """Objects and arrays around a value, from shallow to far past any limit."""
    depth = draw(st.integers(1, 3) | st.integers(MAX_DEPTH - 2, MAX_DEPTH + 1) | st.sampled_from([5_000, 20_000]))
    pattern = draw(st.lists(st.sampled_from(["[", '{"k":']), min_size=1, max_size=4))
    opens = [pattern[i % len(pattern)] for i in range(depth)]
    closes = ["]" if o == "[" else "}" for o in reversed(opens)]
    return ('{"a":' + "".join(opens) + "1" + "".join(closes) + "}").encode()


POISON_BYTES = [b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82", b"\x00", b"\n",
                b"\r", b"\t", b'"', b"\\", b"{", b"[", b"}", b"]", b"null", b"\xc3\xa9"]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A document cut short, or with bytes inserted or replaced."""
    value = bytearray(draw(documents | nested()))
    for _ in range(draw(st.integers(1, 3))):
        action = draw(st.sampled_from(["cut", "insert", "replace"]))
        at = draw(st.integers(0, len(value)))
        if action == "cut":
            del value[at:]
        else:
            piece = draw(st.sampled_from(POISON_BYTES) | st.binary(min_size=1, max_size=3))
            value[at:at + (len(piece) if action == "replace" else 0)] = piece
    return bytes(value)


literals = st.sampled_from([None, b"", b"null", b" null ", b"nul", b"nullx", b"[]", b"1", b'"x"', b"true",
                            b"{}", b"{", b"}", b" ", b"\n", b"{}{}", b'{"a":1}\n{"a":2}']) \
    | st.sampled_from([10_000, 20_000]).map(lambda n: b"[" * n + b"]" * n) \
    | st.sampled_from([10_000, 20_000]).map(lambda n: b"{" * n)
values = st.one_of(literals, documents, nested(), mutated(), st.binary(max_size=64))
batches = st.lists(values, min_size=1, max_size=30)

# --- reference -------------------------------------------------------------------------------------


def depth_of(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max((depth_of(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth_of(v) for v in value), default=0)
    return 0


def json_verdict(value: Optional[bytes]) -> str:
    """"null", "poison" (must be refused) or "unknown" (a valid object the parser may still refuse,
    e.g. an integer out of range or a type that does not match the schema)."""
    if value is None or value == b"" or value.strip(b" \t\r\n") == b"null":
        return "null"
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return "poison"
    if text.lstrip(" \t\r\n")[:1] != "{":
        return "poison"
    try:
        document = json.loads(text)
    except RecursionError:
        return "poison"
    except ValueError:
        return "unknown"  # invalid JSON: refused by the check or by the parser, either is fine
    return "poison" if depth_of(document) > MAX_DEPTH else "unknown"


def string_verdict(value: Optional[bytes]) -> str:
    if value is None:
        return "null"
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return "poison"
    return "valid"


# --- properties ------------------------------------------------------------------------------------


def check_decode(name: str, vals: list[Optional[bytes]]) -> None:
    fmt = FORMATS[name]("raise")
    raw = pa.array(vals, pa.binary())
    verdicts = [json_verdict(v) if name.startswith("json") else string_verdict(v) for v in vals]
    first_poison = next((i for i, v in enumerate(verdicts) if v == "poison"), None)
    if name == "binary":
        assert fmt.decode(raw).equals(raw)
        return
    try:
        out = fmt.decode(raw)
    except RecordDecodeError as exc:
        assert 0 <= exc.row < len(vals), exc.row
        if first_poison is not None:
            assert exc.row <= first_poison, (exc.row, first_poison, exc.reason)
        if name == "string":
            assert exc.row == first_poison, (exc.row, first_poison)
        return
    assert first_poison is None, f"row {first_poison} ({vals[first_poison]!r}) was not refused"
    assert len(out) == len(vals)
    out.validate(full=True)
    for value, verdict, row in zip(vals, verdicts, out.to_pylist()):
        if verdict == "null":
            assert row is None, (value, row)
        elif name == "string":
            assert row == value.decode("utf-8")
        else:
            assert row is not None, value


def raw_batch(vals: list[Optional[bytes]]) -> pa.RecordBatch:
    schema = _consumer.raw_schema(False)
    n = len(vals)
    topic = pa.DictionaryArray.from_arrays(pa.array([0] * n, pa.int32()), pa.array(["poison"]))
    return pa.RecordBatch.from_arrays([
        topic, pa.array([3] * n, pa.int32()), pa.array(range(100, 100 + n), pa.int64()),
        pa.array([0] * n, pa.int64()).cast(pa.timestamp("ms", tz="UTC")), pa.array([0] * n, pa.int8()),
        pa.array([None] * n, pa.binary()), pa.array(vals, pa.binary())], schema=schema)


def check_emitter(name: str, vals: list[Optional[bytes]]) -> None:
    batch = raw_batch(vals)
    raising = KafkaRecordEmitter(batch.schema, Binary(), FORMATS[name]("raise"))
    try:
        out = raising.emit(RecordsWithSplitIds(batch), {})
        assert out.num_rows == len(vals)
    except DecodeError as exc:
        assert (exc.topic, exc.partition) == ("poison", 3) and 100 <= exc.offset < 100 + len(vals)
        assert f"poison[3] offset {exc.offset}" in str(exc)
    if name == "binary":
        return
    diverting = KafkaRecordEmitter(batch.schema, Binary(), FORMATS[name]("dead_letter"))
    out = diverting.emit(RecordsWithSplitIds(batch), {})
    dead = pa.Table.from_batches(diverting.dead_letters, schema=diverting.dead_letter_schema)
    kept = out.column("offset").to_pylist()
    diverted = dead.column("offset").to_pylist()
    assert sorted(kept + diverted) == list(range(100, 100 + len(vals)))
    assert set(dead.column("topic").to_pylist()) <= {"poison"}
    assert all(reason for reason in dead.column("error").to_pylist())
    out.validate(full=True)
    for offset in diverted:
        verdict = (json_verdict if name.startswith("json") else string_verdict)(vals[offset - 100])
        assert verdict != "null", vals[offset - 100]


def main(name: str, examples: int) -> None:
    options = settings(max_examples=examples, deadline=None, database=None,
                       suppress_health_check=list(HealthCheck))

    @options
    @given(batches)
    def decode_property(vals: list[Optional[bytes]]) -> None:
        check_decode(name, vals)

    @options
    @given(batches)
    def emitter_property(vals: list[Optional[bytes]]) -> None:
        check_emitter(name, vals)

    decode_property()
    emitter_property()
    print(f"{name}: ok")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
