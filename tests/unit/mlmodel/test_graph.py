"""The TFLite_Detection_PostProcess op's output order read from the graph (TF1 vs TF2 SSD exports)."""

from __future__ import annotations

import pytest

from devkit import models as model_factory
from devkit.testdata import require_testdata
from module.mlmodel.graph import find_postprocess_outputs


@pytest.mark.parametrize(("model", "roles", "order"), [
    ("coco_ssd_mobilenet_v1_1.0_quant_2018_06_29_no_metadata.tflite", ("boxes", "classes", "scores", "count"), "tf1"),
    ("ssd_tf2_mobilenet_v2_fpnlite_320_float_metadata_11class.tflite", ("scores", "boxes", "count", "classes"), "tf2"),
])
def test_roles_follow_the_op_outputs_not_the_tensor_order(model: str, roles: tuple[str, ...], order: str) -> None:
    data = require_testdata("models/" + model)
    found = find_postprocess_outputs((data / "models" / model).read_bytes())
    assert found is not None
    assert (found.roles, found.order) == (roles, order)
    assert found.index_of("classes") == roles.index("classes")


def test_models_without_the_op() -> None:
    data = require_testdata("models/yolov8n_int8_dynamic_640_coco80.tflite")
    assert find_postprocess_outputs((data / "models/yolov8n_int8_dynamic_640_coco80.tflite").read_bytes()) is None
    assert find_postprocess_outputs(model_factory.nchw_model((4, 4))) is None


@pytest.mark.parametrize("junk", [b"", b"12345678", b"\x00\x00\x00\x00TFL3" + b"\xff" * 40, b"\x10\x00\x00\x00TFL3"])
def test_junk_gives_none(junk: bytes) -> None:
    assert find_postprocess_outputs(junk) is None
