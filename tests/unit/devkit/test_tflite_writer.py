"""Tests for devkit/tflite_writer.py and devkit/models.py: every model loads and runs in both runtimes."""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import tflite

from devkit import models as model_factory
from devkit.tflite_writer import DTYPES, ModelBuilder, embed_files, write_metadata
from module.mlmodel.tflite_metadata import (
    AssociatedFile,
    ModelMetadata,
    TensorMetadata,
    label_file_for,
    parse_metadata_buffer,
    read_model_metadata,
)

ALL_RUNTIMES = ("ai_edge_litert", "tflite_runtime")


@functools.cache
def _interpreter_class(runtime: str) -> tuple[Any, str]:
    """Return (Interpreter class or None, reason it cannot be used), trying a model once per runtime."""
    try:
        cls = importlib.import_module(f"{runtime}.interpreter").Interpreter
        cls(model_content=model_factory.add_model())
    except ImportError as exc:
        return None, f"{runtime} is not installed: {exc}"
    except (SystemError, AttributeError):  # tflite-runtime 2.14 wheels are built against NumPy 1.x.
        return None, f"{runtime} cannot run with NumPy {np.__version__} (binary built against NumPy 1.x)"
    return cls, ""


# tflite-runtime 2.14 cannot run beside NumPy 2 (the project's venv), so its cases run in the NumPy 1.x venv of
# tests/e2e/test_tflite_runtime_compat.py (test_factory_models_run_on_tflite_runtime runs this file there).
RUNTIMES = tuple(r for r in ALL_RUNTIMES if _interpreter_class(r)[0] is not None) or ALL_RUNTIMES[:1]


@pytest.fixture(params=RUNTIMES)
def interpreter(request: pytest.FixtureRequest) -> Callable[[bytes], Any]:
    """A factory of interpreters of one runtime; skips when that runtime cannot run in this environment."""
    cls, reason = _interpreter_class(request.param)
    if cls is None:
        pytest.skip(reason)
    return lambda model: cls(model_content=model)


def _set_input(interp: Any, index: int, value: np.ndarray) -> None:
    try:
        interp.set_tensor(index, value)
    except ValueError:
        # tflite-runtime 2.14's set_tensor rejects uint16 ("Got value of type NOTYPE"); write the buffer directly.
        interp.tensor(index)()[...] = value


def _run(interp: Any, *inputs: np.ndarray) -> list[np.ndarray]:
    interp.allocate_tensors()
    for detail, value in zip(interp.get_input_details(), inputs, strict=True):
        _set_input(interp, detail["index"], value)
    interp.invoke()
    return [interp.get_tensor(d["index"]) for d in interp.get_output_details()]


def _image(interp: Any) -> np.ndarray:
    detail = interp.get_input_details()[0]
    return np.full(detail["shape"], 7, detail["dtype"])


@pytest.mark.parametrize("dtype", model_factory.PASSTHROUGH_DTYPES)
def test_passthrough(interpreter: Callable[[bytes], Any], dtype: str) -> None:
    np_dtype = DTYPES[dtype][1]
    if np.issubdtype(np_dtype, np.integer):
        info = np.iinfo(np_dtype)
        value = np.array([info.min, info.max, 0, 1, info.max - 1, info.min + 1], np_dtype).reshape(1, 2, 3)
    else:
        value = np.array([-1.5, 0.0, 3.25, 1e30, -1e-30, np.pi], np_dtype).reshape(1, 2, 3)
    interp = interpreter(model_factory.passthrough_model(dtype, (1, 2, 3)))
    (out,) = _run(interp, value)
    assert out.dtype == np_dtype and out.shape == (1, 2, 3)
    np.testing.assert_array_equal(out, value)
    assert interp.get_input_details()[0]["name"] == "input" and interp.get_output_details()[0]["name"] == "output"


def test_add(interpreter: Callable[[bytes], Any]) -> None:
    interp = interpreter(model_factory.add_model())
    a, b = np.array([[1, 2, 3, 4]], np.float32), np.array([[10, 20, 30, 40]], np.float32)
    (out,) = _run(interp, a, b)
    np.testing.assert_array_equal(out, a + b)
    assert [d["name"] for d in interp.get_input_details()] == ["a", "b"]
    assert interp.get_output_details()[0]["name"] == "sum"


def test_dynamic_resize(interpreter: Callable[[bytes], Any]) -> None:
    interp = interpreter(model_factory.dynamic_model())
    detail = interp.get_input_details()[0]
    assert list(detail["shape_signature"]) == [1, -1, -1, 3]
    for height, width in ((5, 7), (2, 3)):
        interp.resize_tensor_input(detail["index"], [1, height, width, 3])
        value = np.random.default_rng(height).random((1, height, width, 3), np.float32)
        (out,) = _run(interp, value)
        np.testing.assert_allclose(out, value.mean(axis=(1, 2)), rtol=1e-5)


def test_nchw(interpreter: Callable[[bytes], Any]) -> None:
    interp = interpreter(model_factory.nchw_model((4, 6)))
    assert list(interp.get_input_details()[0]["shape"]) == [1, 3, 4, 6]
    value = np.random.default_rng(0).random((1, 3, 4, 6), np.float32)
    (out,) = _run(interp, value)
    np.testing.assert_allclose(out, value.mean(axis=(2, 3)), rtol=1e-5)


BOXES = [[0.1, 0.2, 0.5, 0.6], [0.3, 0.0, 1.0, 0.9]]  # left, top, right, bottom


@pytest.mark.parametrize("input_dtype", ["uint8", "float32", "int8"])
def test_detector(interpreter: Callable[[bytes], Any], input_dtype: str) -> None:
    model = model_factory.detector_model(BOXES, [16, 0], [0.9, 0.4], input_dtype=input_dtype, input_size=(24, 40),
                                         metadata=True, embedded_labels=["person", "bicycle"])
    interp = interpreter(model)
    assert list(interp.get_input_details()[0]["shape"]) == [1, 24, 40, 3]
    location, category, score, count = _run(interp, _image(interp))
    np.testing.assert_allclose(location, [[[0.2, 0.1, 0.6, 0.5], [0.0, 0.3, 0.9, 1.0]]], rtol=1e-6)
    np.testing.assert_array_equal(category, [[16, 0]])
    np.testing.assert_allclose(score, [[0.9, 0.4]], rtol=1e-6)
    np.testing.assert_array_equal(count, [2])
    names = [d["name"] for d in interp.get_output_details()]
    assert names == ["location", "category", "score", "number of detections"]


def test_detector_options(interpreter: Callable[[bytes], Any]) -> None:
    model = model_factory.detector_model([[10, 20, 30, 40]], [3], [0.7], box_order=(0, 1, 2, 3), pixel=True, count=0)
    location, category, score, count = _run(interp := interpreter(model), _image(interp))
    np.testing.assert_array_equal(location, [[[10, 20, 30, 40]]])
    np.testing.assert_array_equal(count, [0])


def test_detector_without_category(interpreter: Callable[[bytes], Any]) -> None:
    scores = [[0.1, 0.8, 0.1], [0.6, 0.3, 0.1]]
    model = model_factory.detector_model(BOXES, None, scores, with_category=False, metadata=True,
                                         embedded_labels=["a", "b", "c"])
    location, score = _run(interp := interpreter(model), _image(interp))
    assert location.shape == (1, 2, 4)
    np.testing.assert_allclose(score, [scores], rtol=1e-6)
    meta = read_model_metadata(model)
    assert meta is not None and [t.name for t in meta.outputs] == ["location", "score"]
    assert label_file_for(meta, 1) == ("labels.txt", "TENSOR_AXIS_LABELS")


@pytest.mark.parametrize(("dtype", "quant"), [("float32", None), ("uint8", None), ("int8", None),
                                              ("uint8", (0.01, 10))])
def test_classifier(interpreter: Callable[[bytes], Any], dtype: str, quant: tuple[float, int] | None) -> None:
    probs = [0.05, 0.7, 0.25]
    interp = interpreter(model_factory.classifier_model(probs, dtype=dtype, quant=quant))
    (out,) = _run(interp, _image(interp))
    detail = interp.get_output_details()[0]
    assert out.dtype == DTYPES[dtype][1] and detail["name"] == "probability"
    scale, zero_point = detail["quantization"]
    if dtype != "float32":
        expected_scale, expected_zero_point = quant or (1 / 256, 0 if dtype == "uint8" else -128)
        assert scale == pytest.approx(expected_scale) and zero_point == expected_zero_point
        out = (out.astype(np.float64) - zero_point) * scale
    np.testing.assert_allclose(out, [probs], atol=0.006)


def test_classifier_input_quantization(interpreter: Callable[[bytes], Any]) -> None:
    interp = interpreter(model_factory.classifier_model([1.0], input_dtype="uint8", input_size=(5, 9)))
    detail = interp.get_input_details()[0]
    assert list(detail["shape"]) == [1, 5, 9, 3] and detail["quantization"] == (0.0078125, 128)


def test_factory_metadata_round_trips() -> None:
    model = model_factory.detector_model(BOXES, [1, 2], [0.5, 0.6], pixel=True, box_order=(0, 1, 2, 3),
                                         metadata=True, embedded_labels=["x", "", "z"])
    meta = read_model_metadata(model)
    assert meta is not None
    assert [t.name for t in meta.outputs] == ["location", "category", "score", "number of detections"]
    image = meta.inputs[0]
    assert (image.name, image.content, image.color_space) == ("image", "image", "RGB")
    assert image.normalization_mean == (127.5,) and image.normalization_std == (127.5,)
    location = meta.outputs[0]
    assert location.box_index == (0, 1, 2, 3)
    assert (location.box_type, location.box_coordinate_type) == ("BOUNDARIES", "PIXEL")
    assert label_file_for(meta, 1) == ("labels.txt", "TENSOR_VALUE_LABELS")
    assert meta.files == {"labels.txt": b"x\n\nz\n"}
    assert read_model_metadata(model_factory.detector_model(BOXES, [1, 2], [0.5, 0.6])) is None
    classifier = read_model_metadata(model_factory.classifier_model([1.0], metadata=True))
    assert classifier is not None and classifier.outputs[0].name == "probability" and classifier.files == {}


def test_write_metadata_round_trips_every_field() -> None:
    files = (AssociatedFile("a.txt", "first", "TENSOR_AXIS_LABELS"), AssociatedFile("v.txt", "", "VOCABULARY"))
    meta = ModelMetadata(
        name="n", description="d", version="3", author="me", license="MIT",
        inputs=(TensorMetadata("in", "pixels", "image", "GRAYSCALE", normalization_mean=(0.0, 1.5),
                               normalization_std=(2.0, 4.0), stats_min=(-1.0,), stats_max=(1.0,)),
                TensorMetadata("audio", content="audio")),
        outputs=(TensorMetadata("box", content="bounding_box", box_index=(3, 2, 1, 0), box_type="CENTER",
                                box_coordinate_type="PIXEL"),
                 TensorMetadata("plain", associated_files=files)),
        associated_files=(AssociatedFile("readme", "about", "DESCRIPTIONS"),),
    )
    data = write_metadata(meta)
    assert data[4:8] == b"M001"
    assert parse_metadata_buffer(data) == meta


def test_build_embeds_metadata_and_files(interpreter: Callable[[bytes], Any]) -> None:
    b = ModelBuilder(description="hello")
    x = b.add_tensor("x", "float32", (2,))
    y = b.add_tensor("y", "float32", (2,))
    b.add_op("RESHAPE", [x, b.add_const("s", "int32", [2])], [y])
    meta = ModelMetadata(name="m", inputs=(TensorMetadata("x"),), outputs=(TensorMetadata("y"),),
                         files={"labels.txt": b"a\nb\n"})
    model = b.build([x], [y], metadata=meta)
    assert tflite.Model.GetRootAs(model, 0).Description() == b"hello"
    assert read_model_metadata(model) == meta
    (out,) = _run(interpreter(model), np.array([1, 2], np.float32))
    np.testing.assert_array_equal(out, [1, 2])


def test_embed_files_without_files_is_identity() -> None:
    model = model_factory.add_model()
    assert embed_files(model, {}) == model


def test_builder_rejects_unknown_names() -> None:
    b = ModelBuilder()
    with pytest.raises(ValueError, match="dtype"):
        b.add_tensor("x", "complex256", (1,))
    with pytest.raises(ValueError, match="operator"):
        b.add_op("NOT_AN_OP", [0], [1])
    with pytest.raises(ValueError, match="options"):
        b.add_op("TANH", [0], [1], {"beta": 1.0}, options_type=None)
    with pytest.raises(ValueError, match="color space"):
        write_metadata(ModelMetadata(inputs=(TensorMetadata("x", content="image", color_space="CMYK"),)))
    with pytest.raises(ValueError, match="content"):
        write_metadata(ModelMetadata(inputs=(TensorMetadata("x", content="video"),)))
