"""Ultralytics metadata appended to .tflite files: the three real forms, and junk that must not raise."""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from devkit.testdata import require_testdata
from module.mlmodel.ultralytics import parse_metadata_text, read_ultralytics_metadata

FLATBUFFER = b"\x1c\x00\x00\x00TFL3" + b"\x00" * 64  # stands in for the model; the zip follows it


def with_zip(member: str, text: str, *, deflated: bool) -> bytes:
    buf = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if deflated else zipfile.ZIP_STORED
    with zipfile.ZipFile(buf, "w", compression=method) as archive:
        archive.writestr(member, text)
    return FLATBUFFER + buf.getvalue()


PY_DICT = ("{'description': 'Ultralytics YOLOv8n model', 'author': 'Ultralytics', 'version': '8.1.42', 'stride': 32, "
           "'task': 'detect', 'batch': 1, 'imgsz': [640, 640], 'names': {0: 'person', 1: 'bicycle', 2: 'car'}}")


def test_stored_python_dict_repr() -> None:
    meta = read_ultralytics_metadata(with_zip("temp_meta.txt", PY_DICT, deflated=False))
    assert meta is not None
    assert meta.names == ("person", "bicycle", "car")
    assert (meta.imgsz, meta.stride, meta.task, meta.version) == ((640, 640), 32, "detect", "8.1.42")
    assert meta.end2end is None and meta.kpt_shape is None
    assert meta.member == "temp_meta.txt"


def test_deflated_json_with_string_keys_and_end2end() -> None:
    text = json.dumps({"author": "Ultralytics", "task": "detect", "imgsz": [320, 320], "end2end": True,
                       "names": {"0": "person", "1": "bicycle"}, "args": {"int8": True, "nms": False}}, indent=2)
    meta = read_ultralytics_metadata(with_zip("metadata.json", text, deflated=True))
    assert meta is not None
    assert meta.names == ("person", "bicycle") and meta.end2end is True and meta.quantized is True


def test_compact_json_with_quantize_arg_and_pose_keypoints() -> None:
    text = ('{"author":"Ultralytics","task":"pose","imgsz":[640,640],"names":{"0":"face"},'
            '"kpt_shape":[5,3],"args":{"quantize":8},"channels":3,"end2end":false}')
    meta = read_ultralytics_metadata(with_zip("metadata.json", text, deflated=True))
    assert meta is not None
    assert (meta.task, meta.kpt_shape, meta.quantized, meta.channels, meta.end2end) == ("pose", (5, 3), True, 3, False)


def test_name_gaps_keep_their_index() -> None:
    meta = read_ultralytics_metadata(with_zip("metadata.json", '{"task": "detect", "names": {"0": "a", "2": "c"}}',
                                              deflated=True))
    assert meta is not None and meta.names == ("a", "", "c")


@pytest.mark.parametrize("data", [
    b"",
    FLATBUFFER,
    FLATBUFFER + b"PK\x03\x04 truncated zip",
    with_zip("temp_meta.txt", "{'names': ", deflated=False),             # not a literal
    with_zip("temp_meta.txt", "__import__('os').system('true')", deflated=False),  # never evaluated
    with_zip("metadata.json", "[1, 2, 3]", deflated=True),               # not a dict
    with_zip("metadata.json", '{"names": {"x": "a"}, "task": 7}', deflated=True),  # unusable names and task
    with_zip("labels.txt", "person\ncar\n", deflated=False),             # some other embedded file
])
def test_junk_gives_none(data: bytes) -> None:
    assert read_ultralytics_metadata(data) is None


def test_odd_values_become_none_fields() -> None:
    values = parse_metadata_text('{"author": "Ultralytics", "imgsz": "big", "stride": -1, "kpt_shape": [5], '
                                 '"end2end": "yes", "names": ["a", "b"]}')
    assert values is not None
    from module.mlmodel.ultralytics import from_mapping
    meta = from_mapping(values)
    assert meta is not None and meta.names == ("a", "b")
    assert (meta.imgsz, meta.stride, meta.kpt_shape, meta.end2end, meta.task) == (None, None, None, None, None)


@pytest.mark.parametrize(("model", "classes", "first", "imgsz", "end2end", "member"), [
    ("yolov8n_int8_dynamic_640_coco80.tflite", 80, "person", (640, 640), None, "temp_meta.txt"),
    ("yolo11n_full_integer_quant_640_coco80.tflite", 80, "person", (640, 640), None, "temp_meta.txt"),
    ("yolov8_custom_int8_416_safety_glasses_1class.tflite", 1, "safety-glasses", (416, 416), False, "metadata.json"),
    ("yolo_custom_int8_nchw_640_shuttlecock_1class.tflite", 1, "shuttlecock", (640, 640), False, "metadata.json"),
    ("yolo26n_int8_320_coco80.tflite", 80, "person", (320, 320), True, "metadata.json"),
])
def test_real_exports(model: str, classes: int, first: str, imgsz: tuple[int, int], end2end: bool | None,
                      member: str) -> None:
    data = require_testdata("models/" + model)
    meta = read_ultralytics_metadata((data / "models" / model).read_bytes())
    assert meta is not None and meta.names is not None
    assert (len(meta.names), meta.names[0], meta.imgsz, meta.task, meta.end2end, meta.member) == (
        classes, first, imgsz, "detect", end2end, member)


@pytest.mark.parametrize("model", ["yolov5n_fp16_640_coco80.tflite", "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite"])
def test_other_models_have_none(model: str) -> None:
    data = require_testdata("models/" + model)
    assert read_ultralytics_metadata((data / "models" / model).read_bytes()) is None
