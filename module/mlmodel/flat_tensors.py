"""FlatTensor <-> NumPy, vectorised and without per-element Python objects.

``bytes`` tensors (int8/uint8) are read with ``np.frombuffer`` (zero-copy). Packed repeated numbers are read and
written through their wire format: a packed field is a tag, a varint length and the little-endian values, so the
payload is exactly a NumPy buffer (25-200x faster than filling or reading the repeated field element by element,
../shared/docs/style-and-performance.md B2). int16/uint16 travel one value per fixed32 element, as RDK and the
Python SDK do.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from module.errors import InvalidInputError
from module.gen.service.mlmodel.v1 import mlmodel_pb2 as pb

# oneof field -> (array dtype, wire dtype, message class); wire dtype None = bytes field
_FIELDS: Final[dict[str, tuple[np.dtype[Any], np.dtype[Any] | None, Any]]] = {
    "int8_tensor": (np.dtype("int8"), None, pb.FlatTensorDataInt8),
    "uint8_tensor": (np.dtype("uint8"), None, pb.FlatTensorDataUInt8),
    "int16_tensor": (np.dtype("int16"), np.dtype("<u4"), pb.FlatTensorDataInt16),
    "uint16_tensor": (np.dtype("uint16"), np.dtype("<u4"), pb.FlatTensorDataUInt16),
    "int32_tensor": (np.dtype("int32"), np.dtype("<i4"), pb.FlatTensorDataInt32),
    "uint32_tensor": (np.dtype("uint32"), np.dtype("<u4"), pb.FlatTensorDataUInt32),
    "int64_tensor": (np.dtype("int64"), np.dtype("<i8"), pb.FlatTensorDataInt64),
    "uint64_tensor": (np.dtype("uint64"), np.dtype("<u8"), pb.FlatTensorDataUInt64),
    "float_tensor": (np.dtype("float32"), np.dtype("<f4"), pb.FlatTensorDataFloat),
    "double_tensor": (np.dtype("float64"), np.dtype("<f8"), pb.FlatTensorDataDouble),
}
_BY_DTYPE: Final = {dtype: name for name, (dtype, _, _) in _FIELDS.items()}
_FIELD_NUMBERS: Final = {name: pb.FlatTensor.DESCRIPTOR.fields_by_name[name].number for name in _FIELDS}
_SMALL_VARINTS: Final = tuple(bytes((i,)) for i in range(0x80))
# dtypes a TFLite model may produce that FlatTensor cannot carry: widened losslessly.
_WIDEN: Final[dict[np.dtype[Any], np.dtype[Any]]] = {np.dtype("float16"): np.dtype("float32"), np.dtype("bool"): np.dtype("uint8")}


def _varint(value: int) -> bytes:
    if value < 0x80:  # tags and small lengths: most calls
        return _SMALL_VARINTS[value]
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _packed_payload(message: Any) -> memoryview:
    """The packed values of field 1 of a FlatTensorData* message, as a buffer (empty if unset)."""
    raw = message.SerializeToString()
    # raw = tag (0x0a) + varint length + payload, then any unknown fields (always written after the known ones).
    if not raw or raw[0] != 0x0A:
        return memoryview(b"")
    length, shift, pos = 0, 0, 1
    while True:
        byte = raw[pos]
        pos += 1
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    return memoryview(raw)[pos:pos + length]


def decode(tensor: pb.FlatTensor, name: str = "") -> NDArray[Any]:
    """An ndarray of the tensor's dtype and shape; InvalidInputError if the data does not fill the shape."""
    kind = tensor.WhichOneof("tensor")
    if kind is None:
        raise InvalidInputError(f"input tensor {name!r} has no data (none of the FlatTensor data fields is set)")
    dtype, wire, _ = _FIELDS[kind]
    data = getattr(tensor, kind)
    flat = np.frombuffer(data.data, dtype=dtype) if wire is None else np.frombuffer(_packed_payload(data), dtype=wire)
    shape = tuple(int(d) for d in tensor.shape)
    expected = math.prod(shape)
    if expected != flat.size:
        raise InvalidInputError(f"input tensor {name!r} has shape {list(shape)} ({expected} elements) but carries "
                                f"{flat.size} {dtype} values")
    if wire is not None and wire != dtype:
        flat = flat.astype(dtype)  # int16/uint16 from fixed32 (truncating, as RDK does); byte-order fixes
    try:
        return flat.reshape(shape)
    except ValueError:  # more dimensions than NumPy allows, or a 0-element shape with a dimension near 2**64
        raise InvalidInputError(f"input tensor {name!r} has shape {list(shape)}, which no array can have "
                                "(at most 64 dimensions, each below 2**63)") from None


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field: tag (wire type 2), varint length, payload."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


# Messages are assembled as a list of buffers plus their total length and joined once at the end: nesting
# (tensor -> map entry -> response) then costs a few header bytes per level instead of a copy of the payload.
_Parts = tuple[list[Any], int]


def _wrap(number: int, parts: _Parts) -> _Parts:
    """``parts`` as the payload of length-delimited field ``number``."""
    buffers, length = parts
    head = _varint(number << 3 | 2) + _varint(length)
    return [head, *buffers], len(head) + length


def _tensor_parts(array: NDArray[Any]) -> _Parts:
    """A FlatTensor holding ``array`` (C order). float16/bool are widened; others raise ValueError."""
    dtype = _WIDEN.get(array.dtype, array.dtype)
    kind = _BY_DTYPE.get(dtype.newbyteorder("=") if dtype.byteorder == ">" else dtype)
    if kind is None:
        raise ValueError(f"dtype {array.dtype} cannot be sent as a FlatTensor")
    _, wire, _ = _FIELDS[kind]
    values = np.ascontiguousarray(array).astype(wire or dtype, copy=False).reshape(-1)
    shape = np.asarray(array.shape, dtype="<u8").tobytes()
    # An empty data message is still written, so a 0-element tensor keeps its dtype.
    data = _wrap(1, ([values.data.cast("B")], values.nbytes)) if values.nbytes else ([], 0)
    buffers, length = _wrap(_FIELD_NUMBERS[kind], data)
    if shape:
        head = _field(1, shape)
        buffers, length = [head, *buffers], len(head) + length
    return buffers, length


def _tensor_bytes(array: NDArray[Any]) -> bytes:
    """The wire bytes of a FlatTensor holding ``array``."""
    return b"".join(_tensor_parts(array)[0])


def _tensors_parts(arrays: Mapping[str, NDArray[Any]]) -> _Parts:
    # map<string, FlatTensor> is a repeated entry message {key = 1; value = 2}.
    buffers: list[Any] = []
    length = 0
    for name, array in arrays.items():
        key = _field(1, name.encode())
        value, value_length = _wrap(2, _tensor_parts(array))
        entry, entry_length = _wrap(1, ([key, *value], len(key) + value_length))
        buffers += entry
        length += entry_length
    return buffers, length


def _tensors_bytes(arrays: Mapping[str, NDArray[Any]]) -> bytes:
    return b"".join(_tensors_parts(arrays)[0])


def encode_all(arrays: Mapping[str, NDArray[Any]]) -> pb.FlatTensors:
    """FlatTensors built in one parse of their wire bytes (copying a large tensor into a map costs far more)."""
    return pb.FlatTensors.FromString(_tensors_bytes(arrays))


def infer_response_bytes(arrays: Mapping[str, NDArray[Any]]) -> bytes:
    """The wire bytes of an InferResponse holding ``arrays`` as its output tensors (field 3), ready to send: the
    server passes them through instead of parsing them into a message and serializing that again (two copies of
    every output; 30 ms of a 22 MB segmentation map)."""
    return b"".join(_wrap(3, _tensors_parts(arrays))[0])


def decode_all(tensors: pb.FlatTensors) -> dict[str, NDArray[Any]]:
    return {name: decode(tensor, name) for name, tensor in tensors.tensors.items()}


