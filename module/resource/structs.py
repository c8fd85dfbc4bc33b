"""google.protobuf.Struct <-> plain Python values (config attributes, DoCommand payloads, GetStatus replies)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from google.protobuf import struct_pb2


def struct_to_dict(struct: struct_pb2.Struct) -> dict[str, Any]:
    """Plain Python values of a Struct (numbers are floats; a Value with no kind is None).

    Not json_format.MessageToDict: it raises ValueError on NaN and Infinity, which any client can put in a Struct
    (they have no JSON form); here they stay floats, and the attribute readers below reject them by name.
    """
    return {key: _from_value(value) for key, value in struct.fields.items()}


def _from_value(value: struct_pb2.Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "struct_value":
        return struct_to_dict(value.struct_value)
    if kind == "list_value":
        return [_from_value(v) for v in value.list_value.values]
    if kind is None or kind == "null_value":
        return None
    return getattr(value, kind)


def dict_to_struct(values: Mapping[str, Any]) -> struct_pb2.Struct:
    """A Struct from JSON-like Python values (tuples become lists)."""
    struct = struct_pb2.Struct()
    struct.update(_jsonable(values))
    return struct


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, frozenset, set)):
        return [_jsonable(v) for v in value]
    return value
