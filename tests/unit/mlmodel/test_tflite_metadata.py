"""Tests for module/mlmodel/tflite_metadata.py against the real models in ../shared/testdata and crafted input."""

from __future__ import annotations

import dataclasses
import random

import pytest

from devkit import models as model_factory
from devkit.testdata import require_testdata
from module.mlmodel.labels import parse_labels
from module.mlmodel.tflite_metadata import (
    ModelMetadata,
    TensorMetadata,
    label_file_for,
    parse_metadata_buffer,
    read_embedded_files,
    read_model_metadata,
)

SSD = "models/coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite"
MOBILENET_V2 = "models/mobilenet_v2_1.0_224_quant.tflite"
MOBILENET_V1_QUANT = "models/mobilenet_v1_0.25_224_quant.tflite"
MOBILENET_V1_FLOAT = "models/mobilenet_v1_0.25_224_1_metadata_1.tflite"
UNUSED_COCO_IDS = (11, 25, 28, 29, 44, 65, 67, 68, 70, 82)


def _read(relative: str) -> bytes:
    return (require_testdata(relative) / relative).read_bytes()


def _meta(relative: str) -> ModelMetadata:
    meta = read_model_metadata(_read(relative))
    assert meta is not None
    return meta


def test_ssd_metadata() -> None:
    meta = _meta(SSD)
    assert meta.name == "Coco SSD MobileNetV1"
    assert meta.version == "v1" and meta.author == "TensorFlow" and meta.license.startswith("Apache License")
    # The README paraphrases these; the file spells them exactly like this (plural, "number of detections").
    assert [t.name for t in meta.outputs] == ["locations", "classes", "scores", "number of detections"]
    (image,) = meta.inputs
    assert (image.name, image.content, image.color_space) == ("image", "image", "RGB")
    assert image.normalization_mean == (127.5,) and image.normalization_std == (127.5,)
    assert image.stats_min == (0.0,) and image.stats_max == (255.0,)
    locations = meta.outputs[0]
    assert locations.content == "bounding_box"
    assert locations.box_index == (1, 0, 3, 2)  # left at 1, top at 0, right at 3, bottom at 2: [ymin,xmin,ymax,xmax]
    assert (locations.box_type, locations.box_coordinate_type) == ("BOUNDARIES", "RATIO")
    assert all(t.content == "feature" for t in meta.outputs[1:])
    assert meta.associated_files == ()


def test_ssd_embedded_labelmap() -> None:
    meta = _meta(SSD)
    assert set(meta.files) == {"labelmap.txt"}
    assert label_file_for(meta, 1) == ("labelmap.txt", "TENSOR_VALUE_LABELS")
    assert [label_file_for(meta, i) for i in (0, 2, 3)] == [None, None, None]
    labels = parse_labels(meta.files["labelmap.txt"])
    assert len(labels) == 90 and labels[0] == "person" and labels[11] == "???"
    coco = parse_labels((require_testdata("labels") / "labels" / "coco_labels.txt").read_bytes())
    for i, (embedded, plain) in enumerate(zip(labels, coco, strict=True)):
        assert (embedded, plain) == (("???", "n/a") if i in UNUSED_COCO_IDS else (plain, plain))


def test_mobilenet_v2_quant_metadata() -> None:
    meta = _meta(MOBILENET_V2)
    assert meta.name == "ImageClassifier" and meta.version == "" and meta.author == ""
    assert [t.name for t in meta.inputs] == ["image"] and [t.name for t in meta.outputs] == ["probability"]
    assert meta.inputs[0].normalization_mean == (127.5,) and meta.inputs[0].normalization_std == (127.5,)
    assert meta.outputs[0].stats_max == (255.0,)  # Not 1.0 as in the MobileNet v1 files.
    assert label_file_for(meta, 0) == ("imagenet_labels.txt", "TENSOR_AXIS_LABELS")
    labels = parse_labels(meta.files["imagenet_labels.txt"])
    assert len(labels) == 1001 and labels[0] == "background"
    plain = require_testdata("labels") / "labels" / "imagenet_labels.txt"
    assert meta.files["imagenet_labels.txt"] == plain.read_bytes()


@pytest.mark.parametrize(
    ("relative", "name"),
    [(MOBILENET_V1_QUANT, "MobileNetV1 image classifier (quantized)"),
     (MOBILENET_V1_FLOAT, "MobileNetV1 image classifier")],
)
def test_mobilenet_v1_metadata(relative: str, name: str) -> None:
    meta = _meta(relative)
    assert meta.name == name
    assert label_file_for(meta, 0) == ("labels.txt", "TENSOR_AXIS_LABELS")
    labels = parse_labels(meta.files["labels.txt"])
    assert len(labels) == 1001 and labels[0] == "background" and labels[282] == "tabby"
    assert meta.inputs[0].color_space == "RGB"


@pytest.mark.parametrize(
    "relative",
    [
        "models/coco_ssd_mobilenet_v1_1.0_quant_2018_06_29_no_metadata.tflite",
        "models/face_detection_short_range.tflite",
        "models/mobilenet_v1_0.25_224_1_default_1.tflite",
        "models/vww_96_int8.tflite",  # Has a min_runtime_version entry only.
        "models/invalid/person_detect.tflite",
        "models/invalid/model_invoking_error.tflite",
    ],
)
def test_models_without_metadata(relative: str) -> None:
    assert read_model_metadata(_read(relative)) is None


@pytest.mark.parametrize("length", [0, 3, 7, 8, 16, 100, 1000, 100_000, 1_000_000, 2_000_000])
def test_truncated_model_raises_value_error(length: int) -> None:
    with pytest.raises(ValueError):
        read_model_metadata(_read(SSD)[:length])


def test_zip_truncated_away_keeps_metadata() -> None:
    model = _read(SSD)
    meta = read_model_metadata(model[: model.index(b"PK\x03\x04")])
    assert meta is not None and meta.files == {} and label_file_for(meta, 1) is None


@pytest.mark.parametrize("seed", range(5))
def test_garbage_raises_value_error(seed: int) -> None:
    garbage = random.Random(seed).randbytes(500)
    with pytest.raises(ValueError):
        read_model_metadata(garbage)
    with pytest.raises(ValueError):
        parse_metadata_buffer(b"\x00\x10\x00\x00M001" + garbage)


def test_metadata_buffer_without_identifier() -> None:
    with pytest.raises(ValueError, match="M001"):
        parse_metadata_buffer(b"\x08\x00\x00\x00XXXX\x00\x00\x00\x00")


def test_corrupted_bytes_only_raise_value_error() -> None:
    model = model_factory.detector_model([[0.1, 0.2, 0.3, 0.4]], [1], [0.9], metadata=True, embedded_labels=["a", "b"])
    rnd = random.Random(1234)
    outcomes = set()
    for _ in range(1500):
        data = bytearray(model)
        for _ in range(rnd.randint(1, 6)):
            data[rnd.randrange(len(data))] = rnd.randrange(256)
        try:
            outcomes.add(type(read_model_metadata(bytes(data))).__name__)
        except ValueError:
            outcomes.add("ValueError")
    assert outcomes <= {"ValueError", "ModelMetadata", "NoneType"} and "ValueError" in outcomes


def test_corrupt_embedded_zip_raises_value_error() -> None:
    model = model_factory.classifier_model([0.5, 0.5], metadata=True, embedded_labels=["first", "second"])
    damaged = model.replace(b"first\nsecond", b"FIRST\nsecond")  # Same size, wrong CRC.
    assert read_embedded_files(model) == {"labels.txt": b"first\nsecond\n"}
    with pytest.raises(ValueError, match="zip"):
        read_model_metadata(damaged)


def test_non_zip_model_has_no_files() -> None:
    assert read_embedded_files(model_factory.add_model()) == {}
    assert read_embedded_files(b"not a zip at all") == {}


def test_label_file_for_bounds_and_missing_bytes() -> None:
    model = model_factory.classifier_model([0.5, 0.5], metadata=True, embedded_labels=["a", "b"])
    meta = read_model_metadata(model)
    assert meta is not None
    assert label_file_for(meta, 0) == ("labels.txt", "TENSOR_AXIS_LABELS")
    assert label_file_for(meta, 1) is None and label_file_for(meta, -1) is None
    without_bytes = dataclasses.replace(meta, files={})
    assert label_file_for(without_bytes, 0) is None


def test_results_are_frozen() -> None:
    meta = _meta(MOBILENET_V1_QUANT)
    with pytest.raises(dataclasses.FrozenInstanceError):
        meta.name = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        meta.files["x"] = b""  # type: ignore[index]
    assert isinstance(meta.outputs[0], TensorMetadata) and isinstance(meta.outputs, tuple)
