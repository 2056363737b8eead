"""One Arrow type for values whose type a format infers batch by batch (`Json()` without a schema):
types are merged (a field missing or all null in one batch takes the other's type; struct fields
are united), and batches are conformed to the merged type. Integers never meet doubles here: the
schema-less `Json` reads every JSON number as a double."""
from __future__ import annotations

import pyarrow as pa


class TypeConflict(Exception):
    """Two batches gave one field types that no merge reconciles (e.g. a string and a number)."""

    def __init__(self, path: str, first: pa.DataType, second: pa.DataType) -> None:
        super().__init__(f"field {path or '(value)'} is {first} in some records and {second} in others")
        self.path = path


def widen_integers(type_: pa.DataType) -> pa.DataType:
    """`type_` with every integer (at any depth) made a double: what a JSON number is without a schema."""
    if pa.types.is_integer(type_):
        return pa.float64()
    if pa.types.is_struct(type_):
        return pa.struct([field.with_type(widen_integers(field.type)) for field in type_])
    if pa.types.is_list(type_):
        return pa.list_(type_.value_field.with_type(widen_integers(type_.value_type)))
    return type_


def merge_types(first: pa.DataType, second: pa.DataType, path: str = "") -> pa.DataType:
    """The type both values fit: null takes the other's type, structs unite their fields (in the
    first's order, then the second's new ones), lists merge their values; anything else must agree."""
    if first == second:
        return first
    if pa.types.is_null(first):
        return second
    if pa.types.is_null(second):
        return first
    if pa.types.is_struct(first) and pa.types.is_struct(second):
        fields = {field.name: field.type for field in first}
        for field in second:
            name = f"{path}.{field.name}" if path else field.name
            fields[field.name] = (merge_types(fields[field.name], field.type, name)
                                  if field.name in fields else field.type)
        return pa.struct(list(fields.items()))
    if pa.types.is_list(first) and pa.types.is_list(second):
        return pa.list_(merge_types(first.value_type, second.value_type, f"{path}[]"))
    raise TypeConflict(path, first, second)


def conform(array: pa.Array, target: pa.DataType) -> pa.Array:
    """`array` as `target`, a type `merge_types` produced from the array's own: missing struct fields
    become nulls, null columns take their type. Fields of the array that `target` lacks are left out
    (the caller decides whether to say so)."""
    if array.type == target:
        return array
    if pa.types.is_null(array.type):
        return pa.nulls(len(array), target)
    if pa.types.is_struct(target) and pa.types.is_struct(array.type):
        own = {field.name: child for field, child in zip(array.type, array.flatten())}
        children = [conform(own[field.name], field.type) if field.name in own
                    else pa.nulls(len(array), field.type) for field in target]
        return pa.StructArray.from_arrays(children, fields=list(target),
                                          mask=array.is_null() if array.null_count else None)
    # an integer past 2^53 becomes the nearest double, as a JSON number does in most readers
    return array.cast(target, safe=not (pa.types.is_integer(array.type) and pa.types.is_floating(target)))
