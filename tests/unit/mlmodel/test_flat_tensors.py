"""Tests for module/tensors.py: FlatTensor <-> NumPy, checked against the wire format and slow-path messages."""

from __future__ import annotations

import struct
import tracemalloc
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.typing import NDArray

from module.errors import InvalidInputError
from module.gen.service.mlmodel.v1 import mlmodel_pb2 as pb
from module.mlmodel import flat_tensors


def encode(array: NDArray[Any]) -> pb.FlatTensor:
    """One FlatTensor (the module only ever encodes maps of them)."""
    return flat_tensors.encode_all({"t": array}).tensors["t"]

# numpy dtype -> (oneof field, data message class, wire element format for struct, or None for bytes)
FIELDS: dict[str, tuple[str, Any, str | None]] = {
    "int8": ("int8_tensor", pb.FlatTensorDataInt8, None),
    "uint8": ("uint8_tensor", pb.FlatTensorDataUInt8, None),
    "int16": ("int16_tensor", pb.FlatTensorDataInt16, "I"),
    "uint16": ("uint16_tensor", pb.FlatTensorDataUInt16, "I"),
    "int32": ("int32_tensor", pb.FlatTensorDataInt32, "i"),
    "uint32": ("uint32_tensor", pb.FlatTensorDataUInt32, "I"),
    "int64": ("int64_tensor", pb.FlatTensorDataInt64, "q"),
    "uint64": ("uint64_tensor", pb.FlatTensorDataUInt64, "Q"),
    "float32": ("float_tensor", pb.FlatTensorDataFloat, "f"),
    "float64": ("double_tensor", pb.FlatTensorDataDouble, "d"),
}
DTYPES = list(FIELDS)


def extremes(dtype: str) -> np.ndarray:
    """The smallest, largest and a few awkward values of ``dtype``."""
    d = np.dtype(dtype)
    if d.kind == "f":
        info = np.finfo(d)
        values = [info.min, info.max, info.tiny, -info.tiny, info.eps, 0.0, -0.0, 1.0, -1.0, info.smallest_subnormal]
    else:
        info = np.iinfo(d)
        values = [info.min, info.max, 0, 1, info.min + 1, info.max - 1]
        if info.min < 0:
            values.append(-1)
    return np.array(values, dtype=d)


def wire_round_trip(array: np.ndarray) -> np.ndarray:
    """encode -> bytes -> parse -> decode, like a request crossing the socket."""
    return flat_tensors.decode(pb.FlatTensor.FromString(encode(array).SerializeToString()))


def assert_identical(got: np.ndarray, want: np.ndarray) -> None:
    """Same dtype, same shape, same bytes (so NaN payloads and -0.0 count)."""
    assert got.dtype == want.dtype
    assert got.shape == want.shape
    assert got.tobytes() == np.ascontiguousarray(want).tobytes()


def slow_message(array: np.ndarray) -> pb.FlatTensor:
    """The FlatTensor built field by field with the protobuf API, the way the Python SDK does."""
    field, cls, _ = FIELDS[array.dtype.name]
    flat = array.reshape(-1)
    if cls in (pb.FlatTensorDataInt8, pb.FlatTensorDataUInt8):
        data = cls(data=flat.tobytes())
    elif array.dtype.name in ("int16", "uint16"):
        # One value per fixed32 element, sign-extended like Go's uint32(int16) in RDK.
        data = cls(data=[int(v) & 0xFFFFFFFF for v in flat])
    else:
        data = cls(data=flat.tolist())
    return pb.FlatTensor(shape=list(array.shape), **{field: data})


# --- exact round trips ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_extremes_round_trip_exactly(dtype: str) -> None:
    array = extremes(dtype).reshape(1, -1)
    assert_identical(wire_round_trip(array), array)


@pytest.mark.parametrize("dtype", DTYPES)
def test_encoding_matches_message_built_the_slow_way(dtype: str) -> None:
    array = np.resize(extremes(dtype), (2, 3, 2))
    fast = encode(array)
    slow = slow_message(array)
    assert fast == slow
    assert fast.SerializeToString() == slow.SerializeToString()
    assert fast.WhichOneof("tensor") == FIELDS[dtype][0]
    assert_identical(flat_tensors.decode(slow), array)


@pytest.mark.parametrize("dtype", ["int16", "uint16"])
def test_int16_travel_one_value_per_fixed32(dtype: str) -> None:
    array = extremes(dtype)
    data = getattr(encode(array), FIELDS[dtype][0]).data
    assert len(data) == array.size  # not two values packed per element
    assert [v & 0xFFFF for v in data] == [int(v) & 0xFFFF for v in array]
    # The packed payload is exactly 4 bytes per element.
    raw = getattr(encode(array), FIELDS[dtype][0]).SerializeToString()
    assert raw[0] == 0x0A and raw[1] == 4 * array.size and len(raw) == 2 + 4 * array.size


def test_int16_decodes_sign_and_zero_extended_values() -> None:
    """RDK sign-extends (0xFFFFFFFF for -1), the Python SDK's astype(uint32) of a uint16 view would not: both mean -1."""
    message = pb.FlatTensor(shape=[4], int16_tensor=pb.FlatTensorDataInt16(data=[0xFFFFFFFF, 0xFFFF, 0x8000, 0x7FFF]))
    np.testing.assert_array_equal(flat_tensors.decode(message), np.array([-1, -1, -32768, 32767], np.int16))
    message = pb.FlatTensor(shape=[2], uint16_tensor=pb.FlatTensorDataUInt16(data=[0xFFFF, 0x1]))
    decoded = flat_tensors.decode(message)
    assert decoded.dtype == np.uint16
    np.testing.assert_array_equal(decoded, [65535, 1])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(0,), (0, 3), (2, 0, 5), (1, 10, 0)])
def test_zero_element_tensors_keep_dtype_and_shape(dtype: str, shape: tuple[int, ...]) -> None:
    array = np.zeros(shape, dtype)
    message = pb.FlatTensor.FromString(encode(array).SerializeToString())
    assert message.WhichOneof("tensor") == FIELDS[dtype][0]
    assert tuple(message.shape) == shape
    assert_identical(flat_tensors.decode(message), array)


@pytest.mark.parametrize("dtype", DTYPES)
def test_scalars(dtype: str) -> None:
    array = np.array(extremes(dtype)[1], dtype)  # shape ()
    message = encode(array)
    assert list(message.shape) == []
    assert_identical(wire_round_trip(array), array)


def test_nan_and_inf_pass_through() -> None:
    f32 = np.array([np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0], np.float32)
    f32.view(np.uint32)[1] = 0x7FC0_1234  # a NaN with a payload
    f64 = np.array([np.nan, np.inf, -np.inf, -0.0], np.float64)
    f64.view(np.uint64)[0] = 0x7FF8_0000_DEAD_BEEF
    for array in (f32, f64):
        assert_identical(wire_round_trip(array), array)


def test_non_contiguous_big_endian_and_widened_inputs() -> None:
    base = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    transposed = base.transpose(2, 0, 1)
    assert_identical(wire_round_trip(transposed), np.ascontiguousarray(transposed))
    strided = base[:, ::2, ::3]
    assert_identical(wire_round_trip(strided), np.ascontiguousarray(strided))
    big = np.array([1, -2, 70000], dtype=">i4")
    got = wire_round_trip(big)
    assert got.dtype == np.int32 and got.tolist() == [1, -2, 70000]
    # float16 and bool are not FlatTensor types: widened losslessly.
    half = np.array([0.5, -1.25, 65504], np.float16)
    got = wire_round_trip(half)
    assert got.dtype == np.float32 and got.tolist() == [0.5, -1.25, 65504.0]
    got = wire_round_trip(np.array([True, False]))
    assert got.dtype == np.uint8 and got.tolist() == [1, 0]
    with pytest.raises(ValueError, match="complex"):
        encode(np.zeros(2, np.complex64))


def test_encode_all_decode_all_and_infer_response() -> None:
    arrays = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b ü": np.array([1, 2], np.int64),
              "empty": np.zeros((0, 4), np.uint8)}
    all_tensors = pb.FlatTensors.FromString(flat_tensors.encode_all(arrays).SerializeToString())
    decoded = flat_tensors.decode_all(all_tensors)
    assert set(decoded) == set(arrays)
    for name, array in arrays.items():
        assert_identical(decoded[name], array)
    response = pb.InferResponse.FromString(flat_tensors.infer_response_bytes(arrays))
    assert response.output_tensors == pb.FlatTensors(tensors={n: slow_message(a) for n, a in arrays.items()})


# --- wire forms other encoders may use -----------------------------------------------------------------------------

def _key(number: int, wire_type: int) -> bytes:
    return bytes([number << 3 | wire_type])


def _length_delimited(number: int, payload: bytes) -> bytes:
    assert len(payload) < 128
    return _key(number, 2) + bytes([len(payload)]) + payload


@pytest.mark.parametrize("dtype", [d for d in DTYPES if FIELDS[d][2] is not None])
def test_non_packed_repeated_encoding_is_decoded(dtype: str) -> None:
    """Parsers must accept unpacked repeated scalars (one key per element) even though proto3 writes packed."""
    array = extremes(dtype)[:4]
    field, _, fmt = FIELDS[dtype]
    assert fmt is not None
    wire_type = 5 if struct.calcsize(fmt) == 4 else 1  # fixed32/float vs fixed64/double
    wire_values = array.astype(np.int64) & 0xFFFFFFFF if dtype == "int16" else array
    data = b"".join(_key(1, wire_type) + struct.pack("<" + fmt, v.item()) for v in wire_values)
    number = pb.FlatTensor.DESCRIPTOR.fields_by_name[field].number
    raw = _length_delimited(1, struct.pack("<Q", array.size)) + _length_delimited(number, data)
    assert_identical(flat_tensors.decode(pb.FlatTensor.FromString(raw)), array)


def test_unknown_field_in_data_message_is_ignored() -> None:
    """A newer client's extra field after the data must not corrupt or break the decoding."""
    values = np.array([1.5, -2.5, 3.0], np.float32)
    data = _length_delimited(1, values.tobytes()) + _key(2, 0) + b"\x07"
    raw = _length_delimited(1, struct.pack("<Q", 3)) + _length_delimited(10, data)
    assert_identical(flat_tensors.decode(pb.FlatTensor.FromString(raw)), values)
    # Only the unknown field and no data: an empty tensor, not garbage.
    raw = _length_delimited(1, struct.pack("<Q", 0)) + _length_delimited(10, _key(2, 0) + b"\x07")
    assert_identical(flat_tensors.decode(pb.FlatTensor.FromString(raw)), np.zeros(0, np.float32))


# --- bad tensors ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_shape_and_data_mismatch_is_invalid_input(dtype: str) -> None:
    message = slow_message(np.zeros(5, dtype))
    del message.shape[:]
    message.shape.extend([2, 3])
    with pytest.raises(InvalidInputError, match=r"'x' has shape \[2, 3\] \(6 elements\) but carries 5"):
        flat_tensors.decode(message, "x")


def test_shape_claiming_billions_of_elements_fails_without_allocating() -> None:
    message = pb.FlatTensor(shape=[100_000, 100_000, 100_000], float_tensor=pb.FlatTensorDataFloat(data=[1.0]))
    huge = pb.FlatTensor(shape=[2**64 - 1, 2**64 - 1], uint8_tensor=pb.FlatTensorDataUInt8(data=b"\x01"))
    tracemalloc.start()
    try:
        for bad in (message, huge):
            with pytest.raises(InvalidInputError, match="elements"):
                flat_tensors.decode(bad, "image")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20  # nothing near the claimed size was allocated


def test_zero_shape_with_data_is_invalid_input() -> None:
    with pytest.raises(InvalidInputError, match=r"\[0, 4\]"):
        flat_tensors.decode(pb.FlatTensor(shape=[0, 4], int32_tensor=pb.FlatTensorDataInt32(data=[1])), "t")


def test_tensor_without_data_field_is_invalid_input() -> None:
    with pytest.raises(InvalidInputError, match="'nodata' has no data"):
        flat_tensors.decode(pb.FlatTensor(shape=[1, 3]), "nodata")
    with pytest.raises(InvalidInputError, match="'nodata' has no data"):
        flat_tensors.decode_all(pb.FlatTensors(tensors={"nodata": pb.FlatTensor()}))


def test_decode_all_names_the_bad_tensor() -> None:
    good = encode(np.zeros(3, np.float32))
    bad = pb.FlatTensor(shape=[4], float_tensor=pb.FlatTensorDataFloat(data=[1.0]))
    with pytest.raises(InvalidInputError, match="'second'"):
        flat_tensors.decode_all(pb.FlatTensors(tensors={"first": good, "second": bad}))


# --- property test -------------------------------------------------------------------------------------------------

@st.composite
def any_array(draw: st.DrawFn) -> np.ndarray:
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=6))
    elements = st.floats(width=dtype.itemsize * 8, allow_nan=True, allow_infinity=True, allow_subnormal=True) \
        if dtype.kind == "f" else None
    return draw(hnp.arrays(dtype, shape, elements=elements))


@settings(max_examples=300, deadline=None)
@given(any_array())
def test_property_round_trip(array: np.ndarray) -> None:
    assert_identical(wire_round_trip(array), array)
    # and the same bytes as a message built element by element (whose Python floats would quieten signalling NaNs)
    if not (array.dtype.kind == "f" and np.isnan(array).any()):
        assert encode(array).SerializeToString() == slow_message(array).SerializeToString()
