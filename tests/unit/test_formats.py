"""Formats decode a whole batch at once and point at the first bad row."""
import json

import pyarrow as pa
import pytest

from fastsource.errors import ConfigError
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


def test_json_without_schema_infers_each_batch_reading_numbers_as_doubles():
    """Without a schema nothing is pinned per decoder (each reader would pin its own type): every
    batch is inferred alone, and integers come out as doubles so no later fraction contradicts them."""
    fmt = Json()
    assert fmt.output_type() is None
    first = fmt.decode(raw([b'{"a": 1, "l": [1, 2], "s": {"n": 3}}']))
    assert first.type == pa.struct([("a", pa.float64()), ("l", pa.list_(pa.float64())),
                                    ("s", pa.struct([("n", pa.float64())]))])
    assert first.to_pylist() == [{"a": 1.0, "l": [1.0, 2.0], "s": {"n": 3.0}}]
    assert fmt.decode(raw([b'{"a": 2.5, "new": true}'])).type == pa.struct(
        [("a", pa.float64()), ("new", pa.bool_())])
    big = fmt.decode(raw([b'{"a": 9007199254740993}']))  # 2^53 + 1: valid JSON, the nearest double
    assert big.to_pylist() == [{"a": 9007199254740992.0}]


def test_inferred_types_merge_and_conform_or_name_the_conflicting_field():
    from fastsource.formats.infer import TypeConflict, conform, merge_types

    a = pa.struct([("x", pa.float64()), ("n", pa.null())])
    b = pa.struct([("n", pa.list_(pa.float64())), ("y", pa.string())])
    merged = merge_types(a, b)
    assert merged == pa.struct([("x", pa.float64()), ("n", pa.list_(pa.float64())), ("y", pa.string())])
    assert merge_types(b, a) == pa.struct([("n", pa.list_(pa.float64())), ("y", pa.string()),
                                           ("x", pa.float64())])
    array = pa.array([{"x": 1.5, "n": None}, None], a)
    assert conform(array, merged).to_pylist() == [{"x": 1.5, "n": None, "y": None}, None]
    with pytest.raises(TypeConflict, match="field s.v is double in some records and string"):
        merge_types(pa.struct([("s", pa.struct([("v", pa.float64())]))]),
                    pa.struct([("s", pa.struct([("v", pa.string())]))]))


def test_json_names_the_first_invalid_row():
    with pytest.raises(RecordDecodeError) as info:
        Json(pa.schema([("a", pa.int64())])).decode(raw([b'{"a": 1}', b'{"a": 2}', b'{"a": ', b'{}']))
    assert info.value.row == 2


def test_callable_must_keep_the_length():
    fmt = as_format(lambda arr: arr.slice(1))
    assert isinstance(fmt, Function)
    with pytest.raises(ConfigError, match="length 2"):
        fmt.decode(raw([b"a", b"b"]))


def test_unknown_error_policy_is_rejected():
    with pytest.raises(ValueError, match="errors"):
        Json(errors="skip")


def test_json_null_value_is_a_null_row():
    schema = pa.schema([("a", pa.int64())])
    for fmt in (Json(schema), Json()):
        decoded = fmt.decode(raw([b"null", b'{"a": 1}', b" null\n", None, b""]))
        assert decoded.is_null().to_pylist() == [True, False, True, True, True]
        decoded.validate(full=True)


@pytest.mark.parametrize("value, problem", [
    (b'{"a": ' + b"[" * 64 + b"]" * 64 + b"}", "nested deeper than max_depth"),
    (b'{"a": "\xff"}', "invalid UTF-8"),
    (b'{"a": "\xed\xa0\x80"}', "invalid UTF-8"),  # a UTF-16 surrogate
    (b'{"a": "x\ny"}', "raw control character"),
    (b'{"a": "\\x"}', "invalid escape"),
    (b"[1, 2]", "not a JSON object"),
    (b"42", "not a JSON object"),
    (b"   ", "not a JSON object"),
    (b'{"a": 1', "truncated"),
    (b'{"a": "1}', "truncated"),
    (b'{"a": 1} {"b": 2}', "data after the JSON object"),
])
def test_json_refuses_poison_before_the_parser_sees_it(value, problem):
    values = raw([b'{"a": 1}', value, b'{"a": 2}'])
    for fmt in (Json(pa.schema([("a", pa.int64())])), Json()):
        with pytest.raises(RecordDecodeError, match=problem) as info:
            fmt.decode(values)
        assert info.value.row == 1


def test_json_depth_limit_is_configurable_and_brackets_in_strings_do_not_count():
    nested = b'{"a": ' + b"[" * 9 + b"]" * 9 + b', "s": "[[[[[[[[[[[[{{{{"}'
    assert Json(max_depth=10).decode(raw([nested])).type.num_fields == 2
    with pytest.raises(RecordDecodeError, match="max_depth"):
        Json(max_depth=9).decode(raw([nested]))


def test_json_keeps_long_records_with_escapes_and_unicode_across_blocks():
    text = 'é"\\/\t{[' * 40
    value = json.dumps({"t": text, "n": [[1], [2]], "pad": "x" * 33}).encode()
    decoded = Json().decode(raw([value, b'\n{"t": "a",\r\n "n": []}\n']))
    assert decoded.to_pylist()[0]["t"] == text
    decoded.validate(full=True)


@pytest.mark.parametrize("kwargs", [{"max_depth": 0}, {"max_depth": 1001}, {"max_depth": "64"},
                                    {"max_depth": True}, {"schema": {"a": "int64"}}])
def test_json_arguments_are_checked(kwargs):
    with pytest.raises(ConfigError):
        Json(**kwargs)


def test_json_reads_large_binary_and_string_batches_and_the_scan_refuses_64_bit_offsets():
    """Found by the sanitizer run: Json handed a large_binary batch to the JSON pre-scan (`json_lines`), which read its
    64-bit offsets as 32-bit ones (ASan: memcpy of size -7). Json now converts first, and the compiled
    readers of record arrays refuse 64-bit offsets instead of misreading them."""
    from fastsource.formats import _json, _wire

    values = [b'{"a":1}', b'{"b":2}', b'{"c":3333333333333333333333333}']
    expected = Json().decode(raw(values)).to_pylist()
    for kind in (pa.large_binary(), pa.large_string(), pa.string()):
        assert Json().decode(pa.array(values, pa.binary()).cast(kind)).to_pylist() == expected
    wide = pa.array(values, pa.large_binary())
    with pytest.raises(TypeError, match="large_binary"):
        _json.json_lines(wide)
    with pytest.raises(TypeError, match="large_binary"):
        _wire.schema_ids(wide)
