"""The Protobuf messages of the Schema Registry benchmark, `Small` and `Wide` (package fastsource.bench),
built the way protoc's generated modules build theirs: a FileDescriptorProto added to the default pool.
Written by hand because protoc is not a dependency; the fields mirror `schemas.SMALL_AVRO` and
`schemas.WIDE_AVRO` (timestamps as google.protobuf.Timestamp, nullable fields as proto3 optional)."""
from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, timestamp_pb2

F = descriptor_pb2.FieldDescriptorProto
_SCALARS = {"int64": F.TYPE_INT64, "int32": F.TYPE_INT32, "string": F.TYPE_STRING, "double": F.TYPE_DOUBLE,
            "float": F.TYPE_FLOAT, "bool": F.TYPE_BOOL}
_PACKAGE = "fastsource.bench"


def _add_fields(message: descriptor_pb2.DescriptorProto, fields: list[tuple[str, str, str]]) -> None:
    """fields: (name, type, how) with how "" (singular), "optional" (proto3 optional) or "repeated";
    a type starting with "." names a message or enum."""
    for number, (name, kind, how) in enumerate(fields, start=1):
        field = message.field.add(name=name, number=number, json_name=name)
        field.label = F.LABEL_REPEATED if how == "repeated" else F.LABEL_OPTIONAL
        if kind in _SCALARS:
            field.type = _SCALARS[kind]
        else:
            field.type_name = kind
            field.type = F.TYPE_ENUM if kind.endswith("Status") else F.TYPE_MESSAGE
        if how == "optional":
            field.proto3_optional = True
            field.oneof_index = len(message.oneof_decl)
            message.oneof_decl.add(name=f"_{name}")


def _file() -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto(name="fastsource/bench.proto", package=_PACKAGE, syntax="proto3",
                                               dependency=[timestamp_pb2.DESCRIPTOR.name])
    ts = ".google.protobuf.Timestamp"
    _add_fields(proto.message_type.add(name="Small"), [
        ("id", "int64", ""), ("name", "string", ""), ("amount", "double", ""), ("flag", "bool", ""),
        ("ts", ts, ""), ("note", "string", "optional")])
    wide = proto.message_type.add(name="Wide")
    status = wide.enum_type.add(name="Status")
    for number, name in enumerate(["OK", "WARN", "FAIL"]):
        status.value.add(name=name, number=number)
    location = wide.nested_type.add(name="Location")
    _add_fields(location, [("lat", "double", ""), ("lon", "double", ""), ("accuracy", "float", ""),
                           ("source", "string", "")])
    entry = wide.nested_type.add(name="MetricsEntry")
    entry.options.map_entry = True
    _add_fields(entry, [("key", "string", ""), ("value", "double", "")])
    _add_fields(wide, [
        ("id", "int64", ""), ("user_id", "int64", ""), ("session", "string", ""), ("ts", ts, ""),
        ("amount", "double", ""), ("price", "float", ""), ("quantity", "int32", ""), ("flag", "bool", ""),
        ("country", "string", ""), ("city", "string", ""), ("device", "string", ""), ("os", "string", ""),
        ("browser", "string", ""), ("referrer", "string", "optional"), ("campaign", "string", "optional"),
        ("score", "double", ""), ("rank", "int32", ""), ("latency_ms", "int64", ""), ("bytes_in", "int64", ""),
        ("bytes_out", "int64", ""), ("retries", "int32", ""), ("status", f".{_PACKAGE}.Wide.Status", ""),
        ("tags", "string", "repeated"), ("metrics", f".{_PACKAGE}.Wide.MetricsEntry", "repeated"),
        ("location", f".{_PACKAGE}.Wide.Location", ""), ("experiment", "int64", "optional"),
        ("version", "int32", ""), ("checksum", "int64", ""), ("region", "string", ""), ("active", "bool", "")])
    return proto


_pool = descriptor_pool.Default()
try:
    DESCRIPTOR = _pool.FindFileByName("fastsource/bench.proto")
except KeyError:
    DESCRIPTOR = _pool.Add(_file())
Small = message_factory.GetMessageClass(_pool.FindMessageTypeByName(f"{_PACKAGE}.Small"))
Wide = message_factory.GetMessageClass(_pool.FindMessageTypeByName(f"{_PACKAGE}.Wide"))
