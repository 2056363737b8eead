"""Formats decode a whole batch at once and point at the first bad row."""
import pyarrow as pa
import pytest

from fastsource.formats import Binary, Function, Json, RecordDecodeError, String, as_format


def raw(values):
    return pa.array(values, pa.binary())


def test_binary_is_identity():
    values = raw([b"\x00\n", None, b""])
    assert Binary().decode(values) is values


def test_string_decodes_and_keeps_nulls():
    assert String().decode(raw([b"a", None, "é".encode()])).to_pylist() == ["a", None, "é"]


def test_string_names_the_first_invalid_row():
    with pytest.raises(RecordDecodeError) as info:
        String().decode(raw([b"ok", b"ok", b"\xff\xfe", b"ok"]))
    assert info.value.row == 2


def test_json_with_schema_gives_typed_struct_and_null_rows():
    schema = pa.schema([("a", pa.int64()), ("b", pa.string())])
    decoded = Json(schema).decode(raw([b'{"a": 1, "b": "x", "extra": 3}', None, b"", b'{"a":\n 2}']))
    assert decoded.type == pa.struct(list(schema))
    assert decoded.to_pylist() == [{"a": 1, "b": "x"}, None, None, {"a": 2, "b": None}]


def test_json_without_schema_infers_then_pins_the_type():
    fmt = Json()
    assert fmt.output_type() is None
    first = fmt.decode(raw([b'{"a": 1}']))
    assert first.type == pa.struct([("a", pa.int64())])
    assert fmt.decode(raw([b'{"a": 2, "new": true}'])).type == first.type


def test_json_names_the_first_invalid_row():
    with pytest.raises(RecordDecodeError) as info:
        Json(pa.schema([("a", pa.int64())])).decode(raw([b'{"a": 1}', b'{"a": 2}', b'{"a": ', b'{}']))
    assert info.value.row == 2


def test_callable_must_keep_the_length():
    fmt = as_format(lambda arr: arr.slice(1))
    assert isinstance(fmt, Function)
    with pytest.raises(TypeError, match="length 2"):
        fmt.decode(raw([b"a", b"b"]))


def test_unknown_error_policy_is_rejected():
    with pytest.raises(ValueError, match="errors"):
        Json(errors="skip")
