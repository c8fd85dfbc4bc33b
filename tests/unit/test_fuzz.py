"""Property-based fuzzing (hypothesis) of the parsers that take untrusted input: FlatTensor decoding, the config
attributes of both models (including the Struct they arrive in), DoCommand set_thresholds, and label files.

The property is always the same: whatever comes in, the only exception is the module's own error for bad input
(InvalidInputError / ConfigError, which the server turns into INVALID_ARGUMENT), never a ValueError, IndexError,
KeyError... that would become INTERNAL. Image decoding is fuzzed in tests/unit/vision/test_imaging.py.
"""

from __future__ import annotations

import math
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from google.protobuf import struct_pb2
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from module.errors import ConfigError, InvalidInputError, ModuleError
from module.gen.service.mlmodel.v1 import mlmodel_pb2 as pb
from module.mlmodel import flat_tensors
from module.mlmodel.config import TFLiteConfig
from module.mlmodel.labels import parse_labels, read_label_file
from module.resource.structs import dict_to_struct, struct_to_dict
from module.vision.config import Thresholds, VisionConfig
from module.vision.service import _merge_thresholds

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# oneof field -> (field number, element struct format or None for bytes)
DATA_FIELDS: dict[str, tuple[int, str | None]] = {
    "int8_tensor": (2, None), "uint8_tensor": (3, None), "int16_tensor": (4, "I"), "uint16_tensor": (5, "I"),
    "int32_tensor": (6, "i"), "uint32_tensor": (7, "I"), "int64_tensor": (8, "q"), "uint64_tensor": (9, "Q"),
    "float_tensor": (10, "f"), "double_tensor": (11, "d"),
}
DIM = st.one_of(st.integers(0, 8), st.integers(0, 2**64 - 1), st.sampled_from([2**31, 2**32, 2**63, 2**64 - 1]))


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def length_delimited(number: int, payload: bytes) -> bytes:
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def decode_or_invalid(message: pb.FlatTensor) -> np.ndarray | None:
    """decode(), which may only succeed (with a consistent array) or raise InvalidInputError."""
    try:
        array = flat_tensors.decode(message, "fuzz")
    except InvalidInputError:
        return None
    assert array.shape == tuple(message.shape)
    assert array.size == math.prod(message.shape)
    return array


# --- FlatTensor ------------------------------------------------------------------------------------------------------

@FUZZ
@given(shape=st.lists(DIM, max_size=8), kind=st.sampled_from(sorted(DATA_FIELDS)), count=st.integers(0, 64),
       seed=st.integers(0, 2**32 - 1), extra=st.binary(max_size=16))
def test_flat_tensor_of_any_shape_and_data_decodes_or_is_invalid_input(shape: list[int], kind: str, count: int,
                                                                        seed: int, extra: bytes) -> None:
    """Any shape (including ones claiming 2**64 elements) against any amount of data, optionally followed by
    unknown fields in the data message."""
    number, fmt = DATA_FIELDS[kind]
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 256, count * (struct.calcsize(fmt) if fmt else 1), dtype=np.uint8).tobytes()
    data_message = length_delimited(1, values) if values else b""
    # Unknown fields after the data, as a newer client might send (field 2+, varint wire type).
    data_message += b"".join(varint((2 + i % 5) << 3) + varint(b) for i, b in enumerate(extra))
    raw = length_delimited(1, b"".join(struct.pack("<Q", d) for d in shape)) + length_delimited(number, data_message)
    decode_or_invalid(pb.FlatTensor.FromString(raw))


@FUZZ
@given(ndim=st.integers(0, 200), zero_at=st.integers(0, 200), big=st.sampled_from([1, 2**20, 2**62, 2**64 - 1]))
def test_many_dimensions_and_zero_sized_huge_dimensions_are_invalid_input_or_empty(ndim: int, zero_at: int,
                                                                                   big: int) -> None:
    """More dimensions than NumPy supports, and 0-element shapes with a dimension of 2**64-1 (no data needed)."""
    shape = [big if i != zero_at else 0 for i in range(ndim)] if zero_at < ndim else [1] * ndim
    count = math.prod(shape)
    assume(count <= 16)
    message = pb.FlatTensor(shape=shape, float_tensor=pb.FlatTensorDataFloat(data=[1.0] * count))
    decode_or_invalid(message)


@FUZZ
@given(raw=st.binary(max_size=512))
def test_random_bytes_as_flat_tensors_decode_or_are_invalid_input(raw: bytes) -> None:
    """Random bytes that happen to parse as FlatTensors (grpc rejects the rest before the module sees them)."""
    try:
        message = pb.FlatTensors.FromString(raw)
    except DecodeError:
        return
    try:
        decoded = flat_tensors.decode_all(message)
    except InvalidInputError:
        return
    assert set(decoded) == set(message.tensors)


@FUZZ
@given(raw=st.binary(max_size=256), kind=st.sampled_from(sorted(DATA_FIELDS)))
def test_random_bytes_in_a_data_message_decode_or_are_invalid_input(raw: bytes, kind: str) -> None:
    number, _ = DATA_FIELDS[kind]
    try:
        message = pb.FlatTensor.FromString(length_delimited(1, struct.pack("<Q", 4)) + length_delimited(number, raw))
    except DecodeError:
        return
    decode_or_invalid(message)


# --- config attributes -----------------------------------------------------------------------------------------------

FLOATS = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0.0, 1.0, -1.0, 0.5, 3.0, 1e300, -0.0])
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20) | st.sampled_from([
    "", "\x00", "a\x00b", "/", ".", "..", "/etc/passwd", "x.tflite", "$(touch /tmp/pwned).tflite", "a;b|c`d`.tflite", "é" * 5])
SCALARS = st.none() | st.booleans() | FLOATS | TEXT
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(TEXT, inner, max_size=4),
                    max_leaves=12)

TFLITE_KEYS = ["model_path", "label_path", "num_threads", "pool_size", "runtime", "package_reference"]
VISION_KEYS = ["mlmodel_name", "camera_name", "label_path", "remap_input_names", "remap_output_names",
               "xmin_ymin_xmax_ymax_order", "input_image_bgr", "input_image_mean_value", "input_image_std_dev",
               "resize_mode", "default_minimum_confidence", "label_confidences", "allowed_labels", "iou_threshold",
               "class_agnostic_nms", "max_detections"]
# Plausible values per attribute, so that the fuzzer gets past the first check often enough to reach later ones.
PLAUSIBLE: dict[str, Any] = {
    "model_path": st.sampled_from(["m.tflite", "/nonexistent/m.tflite", "a\x00.tflite"]),
    "num_threads": st.integers(-3, 300).map(float), "pool_size": st.integers(-3, 70).map(float),
    "runtime": st.sampled_from(["auto", "ai-edge-litert", "tflite-runtime", "x"]),
    "mlmodel_name": st.sampled_from(["m", ""]),
    "xmin_ymin_xmax_ymax_order": st.lists(FLOATS | st.integers(-1, 4).map(float), min_size=3, max_size=5),
    "input_image_mean_value": st.lists(FLOATS, min_size=0, max_size=5),
    "input_image_std_dev": st.lists(FLOATS, min_size=0, max_size=5),
    "remap_output_names": st.dictionaries(TEXT, st.sampled_from(["location", "score", "nope"]) | SCALARS, max_size=3),
    "remap_input_names": st.dictionaries(TEXT, st.sampled_from(["image"]) | SCALARS, max_size=2),
    "label_confidences": st.dictionaries(TEXT, FLOATS | SCALARS, max_size=3),
    "allowed_labels": st.lists(TEXT | SCALARS, max_size=3),
    "resize_mode": st.sampled_from(["stretch", "letterbox", "crop"]),
}


def attributes(keys: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    value = {k: (PLAUSIBLE[k] | JSON) if k in PLAUSIBLE else JSON for k in keys}
    known = st.fixed_dictionaries({}, optional=value)
    return st.tuples(known, st.dictionaries(TEXT, JSON, max_size=2)).map(lambda kv: {**kv[1], **kv[0]})


def parse_or_config_error(parse: Any, raw: dict[str, Any]) -> Any:
    try:
        return parse(raw)
    except ConfigError as exc:
        assert str(exc)
        return None


@FUZZ
@given(raw=attributes(TFLITE_KEYS))
def test_tflite_config_parses_or_raises_config_error(raw: dict[str, Any]) -> None:
    config = parse_or_config_error(TFLiteConfig.parse, raw)
    if config is not None:
        assert config.model_path.endswith(".tflite")
        assert config.pool_size is None or 1 <= config.pool_size <= 64
        assert config.num_threads is None or 1 <= config.num_threads <= 256
        layout = config.interpreters()
        assert layout.count >= 1 and layout.threads >= 1 and layout.solo_threads >= 0


@FUZZ
@given(raw=attributes(VISION_KEYS))
def test_vision_config_parses_or_raises_config_error(raw: dict[str, Any]) -> None:
    config = parse_or_config_error(VisionConfig.parse, raw)
    if config is not None:
        assert config.mlmodel_name
        for values in (config.mean, config.std):
            assert values is None or all(math.isfinite(v) for v in values)


@FUZZ
@given(raw=attributes(VISION_KEYS[10:]))
def test_set_thresholds_merges_or_raises_config_error(raw: dict[str, Any]) -> None:
    parse_or_config_error(lambda r: _merge_thresholds(Thresholds(), r), raw)


def random_struct_value(draw: Any, depth: int = 0) -> struct_pb2.Value:
    """A protobuf Value as any client could send it, including numbers JSON cannot express (NaN, Infinity)."""
    value = struct_pb2.Value()
    kind = draw(st.sampled_from(["null", "number", "string", "bool", "list", "struct", "unset"][: 7 if depth < 2 else 4]))
    if kind == "null":
        value.null_value = struct_pb2.NULL_VALUE
    elif kind == "number":
        value.number_value = draw(FLOATS)
    elif kind == "string":
        value.string_value = draw(TEXT)
    elif kind == "bool":
        value.bool_value = draw(st.booleans())
    elif kind == "list":
        value.list_value.values.extend(random_struct_value(draw, depth + 1) for _ in range(draw(st.integers(0, 3))))
    elif kind == "struct":
        for key in draw(st.lists(TEXT, max_size=3)):
            value.struct_value.fields[key].CopyFrom(random_struct_value(draw, depth + 1))
    return value  # "unset": a Value with no kind, which a hand-written client can send


@st.composite
def structs(draw: Any) -> struct_pb2.Struct:
    struct_message = struct_pb2.Struct()
    keys = draw(st.lists(st.sampled_from(VISION_KEYS + TFLITE_KEYS) | TEXT, max_size=5))
    for key in keys:
        struct_message.fields[key].CopyFrom(random_struct_value(draw))
    return struct_message


@FUZZ
@given(message=structs())
def test_any_struct_becomes_attributes_or_a_module_error(message: struct_pb2.Struct) -> None:
    """The path of AddResource/ValidateConfig: Struct -> dict -> both parsers (and DoCommand's Struct -> dict)."""
    try:
        raw = struct_to_dict(message)
    except ModuleError as exc:
        assert exc.code.name == "INVALID_ARGUMENT"
        return
    parse_or_config_error(TFLiteConfig.parse, raw)
    parse_or_config_error(VisionConfig.parse, raw)


@FUZZ
@given(raw=st.dictionaries(TEXT, JSON, max_size=4))
def test_json_like_values_round_trip_through_struct(raw: dict[str, Any]) -> None:
    """What the module sends back (DoCommand results, GetStatus) survives the Struct round trip or is refused
    with a module error (NaN/Infinity have no JSON form)."""
    try:
        message = dict_to_struct(raw)
        back = struct_to_dict(message)
    except ModuleError:
        return
    assert set(back) == {str(k) for k in raw}


# --- labels ----------------------------------------------------------------------------------------------------------

@FUZZ
@given(data=st.binary(max_size=400))
def test_any_label_bytes_parse_without_raising(data: bytes) -> None:
    labels = parse_labels(data)
    assert all(isinstance(label, str) and "\n" not in label and "\r" not in label for label in labels)
    assert not labels or labels[-1] != ""


LABEL_LINE = st.text(alphabet=st.characters(blacklist_characters="\r\n,\ufeff", blacklist_categories=("Cs",)), max_size=12)


@FUZZ
@given(lines=st.lists(LABEL_LINE, max_size=12),
       bom=st.booleans(), newline=st.sampled_from(["\n", "\r\n", "\r"]), trailing=st.booleans())
def test_line_i_is_label_i_whatever_the_line_endings_and_bom(lines: list[str], bom: bool, newline: str,
                                                              trailing: bool) -> None:
    assume(len(lines) != 1)  # a single line with commas is the other (comma-separated) format
    data = ("\ufeff" if bom else "") + newline.join(lines) + (newline if trailing else "")
    labels = parse_labels(data.encode())
    expected = [line.strip() for line in lines]
    while expected and not expected[-1]:
        expected.pop()
    assert list(labels) == expected


@FUZZ
@given(path=TEXT)
def test_label_file_paths_that_are_not_readable_files_are_config_errors(path: str) -> None:
    try:
        labels = read_label_file(path)
    except ConfigError as exc:
        assert "label file" in str(exc)
        return
    assert labels  # only a real, non-empty file gets here


@pytest.mark.timeout(20)
def test_label_file_that_is_a_fifo_or_device_does_not_hang(tmp_path: Path) -> None:
    """/dev/zero would be read forever and a FIFO would block: neither is a label file."""
    fifo = tmp_path / "labels.fifo"
    os.mkfifo(fifo)
    for path in (str(fifo), "/dev/zero"):
        with pytest.raises(ConfigError, match="label file"):
            read_label_file(path)


# --- atheris (coverage-guided; optional: runs when atheris is installed) ---------------------------------------------

ATHERIS_SCRIPT = r'''
import sys
import atheris

with atheris.instrument_imports():
    from google.protobuf import struct_pb2
    from google.protobuf.message import DecodeError
    from module import tensors
    from module.resource.structs import struct_to_dict
    from module.errors import ConfigError, InvalidInputError
    from module.gen.service.mlmodel.v1 import mlmodel_pb2
    from module.mlmodel.labels import parse_labels
    from module.mlmodel.config import TFLiteConfig
    from module.vision.config import VisionConfig


def one_input(data: bytes) -> None:
    if not data:
        return
    kind, body = data[0] % 3, data[1:]
    if kind == 0:
        try:
            message = mlmodel_pb2.FlatTensors.FromString(body)
        except DecodeError:
            return
        try:
            flat_tensors.decode_all(message)
        except InvalidInputError:
            pass
    elif kind == 1:
        try:
            message = struct_pb2.Struct.FromString(body)
        except DecodeError:
            return
        try:
            raw = struct_to_dict(message)
        except (ConfigError, InvalidInputError):
            return
        for parse in (TFLiteConfig.parse, VisionConfig.parse):
            try:
                parse(raw)
            except ConfigError:
                pass
    else:
        parse_labels(body)


atheris.Setup(sys.argv, one_input)
atheris.Fuzz()
'''


@pytest.mark.timeout(180)
def test_atheris_flat_tensors_structs_and_labels(tmp_path: Path) -> None:
    """Coverage-guided fuzzing of the same three parsers (libFuzzer via atheris), a fixed number of runs."""
    pytest.importorskip("atheris")
    import subprocess
    import sys

    from devkit.standin.launcher import REPO

    script = tmp_path / "fuzz_atheris.py"
    script.write_text(ATHERIS_SCRIPT)
    runs = 30_000
    result = subprocess.run([sys.executable, str(script), f"-runs={runs}", "-max_len=512", "-seed=1",
                             f"-artifact_prefix={tmp_path}/"], cwd=REPO, capture_output=True, text=True, timeout=170,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    tail = (result.stdout + result.stderr)[-3000:]
    assert result.returncode == 0, tail
    assert f"Done {runs} runs" in tail, tail
