"""The vision service over a real socket: a module process started like viam-server starts it, resources added with
AddResource, and VisionService calls through the generated stubs (what viam-server and the SDKs send)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import PIL.Image
import pytest

from devkit import models as model_factory
from devkit.standin.launcher import MLMODEL, VISION, ModuleProcess
from devkit.standin.parent import encode_rgba
from devkit.testdata import TESTDATA, require_testdata
from module.gen.common.v1 import common_pb2
from module.gen.service.vision.v1 import vision_pb2 as pb
from module.resource.structs import dict_to_struct, struct_to_dict

WIDTH, HEIGHT = 160, 90
BOX = (0.1, 0.2, 0.6, 0.9)  # left, top, right, bottom
BOX_PX = (16, 18, 96, 81)  # on 160 x 90
LABELS = ["cat", "dog", "bird"]
MLMODEL_PREFIX = "rdk:service:mlmodel/"
VISION_PREFIX = "rdk:service:vision/"


def pixels(width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 255 // width, y * 255 // height, (x + y) % 256], -1).astype(np.uint8)


def encode(fmt: str, mode: str = "RGB", width: int = WIDTH, height: int = HEIGHT) -> bytes:
    out = io.BytesIO()
    PIL.Image.fromarray(pixels(width, height)).convert(mode).save(out, fmt)
    return out.getvalue()


IMAGES = {  # mime type -> bytes of the same 160 x 90 picture
    "image/jpeg": encode("JPEG"),
    "image/png": encode("PNG", "RGBA"),
    "image/bmp": encode("BMP"),
    "image/vnd.viam.rgba": encode_rgba(pixels()),
}


class Module:
    """One module process for this file, with resources added on first use."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.process = ModuleProcess(env={"VIAM_NO_MODULE_PARENT": "true"})
        self.process.wait_for_socket()
        self.process.ready("/nonexistent/parent.sock")
        self.vision = self.process.vision
        self._added: set[str] = set()

    def mlmodel(self, name: str, model: bytes | Path, **attrs: Any) -> None:
        if isinstance(model, bytes):
            path = self.folder / f"{name}.tflite"
            path.write_bytes(model)
            model = path
        self.process.add(name, MLMODEL, {"model_path": str(model), "pool_size": 1, **attrs})

    def service(self, name: str, mlmodel: str, **attrs: Any) -> None:
        deps = [MLMODEL_PREFIX + mlmodel] + ([f"rdk:component:camera/{attrs['camera_name']}"]
                                             if attrs.get("camera_name") else [])
        self.process.add(name, VISION, {"mlmodel_name": mlmodel, **attrs}, tuple(deps))

    def once(self, name: str, add: Callable[[], None]) -> str:
        if name not in self._added:
            add()
            self._added.add(name)
        return name

    def labels(self, labels: list[str], name: str) -> str:
        path = self.folder / name
        path.write_text("\n".join(labels) + "\n")
        return str(path)


@pytest.fixture(scope="module")
def module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Module]:
    m = Module(tmp_path_factory.mktemp("vision-servicer"))
    try:
        yield m
    finally:
        m.process.close()


def detector_service(m: Module) -> str:
    def add() -> None:
        boxes = [BOX, (0.0, 0.0, 0.5, 0.5), (0.5, 0.5, 1.0, 1.0)]
        m.mlmodel("det", model_factory.detector_model(boxes, [0, 1, 2], [0.9, 0.6, 0.3], metadata=True,
                                                      embedded_labels=LABELS))
        m.service("vdet", "det", camera_name="cam")
    return m.once("vdet", add)


def classifier_service(m: Module) -> str:
    def add() -> None:
        m.mlmodel("cls", model_factory.classifier_model([0.1, 0.6, 0.3], dtype="uint8"))
        m.service("vcls", "cls", label_path=m.labels(LABELS, "cls_labels.txt"))
    return m.once("vcls", add)


def rpc_error(call: Callable[[], Any]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value


def assert_still_serving(m: Module) -> None:
    reply = m.vision.GetDetections(pb.GetDetectionsRequest(name=detector_service(m), image=IMAGES["image/png"],
                                                           mime_type="image/png"), timeout=30)
    assert len(reply.detections) == 3


def box_of(d: pb.Detection) -> tuple[int, int, int, int]:
    return (d.x_min, d.y_min, d.x_max, d.y_max)


def check_wire_detection(d: pb.Detection, width: int, height: int) -> None:
    for field in ("x_min", "y_min", "x_max", "y_max", "x_min_normalized", "y_min_normalized", "x_max_normalized",
                  "y_max_normalized"):
        assert d.HasField(field), field  # viam-server rejects detections with any of them unset
    assert 0 <= d.x_min <= d.x_max <= width and 0 <= d.y_min <= d.y_max <= height
    assert d.x_max_normalized > 0 and d.y_max_normalized > 0
    assert d.x_min_normalized == pytest.approx(d.x_min / width) and d.x_max_normalized == pytest.approx(d.x_max / width)
    assert d.y_min_normalized == pytest.approx(d.y_min / height)
    assert d.y_max_normalized == pytest.approx(d.y_max / height)


# --- detections and classifications per image format -----------------------------------------------------------------

@pytest.mark.parametrize("mime", [*IMAGES, ""])
def test_get_detections_per_format(module: Module, mime: str) -> None:
    data = IMAGES[mime or "image/jpeg"]
    reply = module.vision.GetDetections(pb.GetDetectionsRequest(name=detector_service(module), image=data,
                                                                mime_type=mime), timeout=30)
    assert [(d.class_name, round(d.confidence, 3)) for d in reply.detections] == [
        ("cat", 0.9), ("dog", 0.6), ("bird", 0.3)]
    assert box_of(reply.detections[0]) == BOX_PX  # mapped onto the 160 x 90 image, whatever its encoding
    for d in reply.detections:
        check_wire_detection(d, WIDTH, HEIGHT)


@pytest.mark.parametrize("mime", list(IMAGES))
def test_get_classifications_per_format(module: Module, mime: str) -> None:
    reply = module.vision.GetClassifications(pb.GetClassificationsRequest(
        name=classifier_service(module), image=IMAGES[mime], mime_type=mime, n=2), timeout=30)
    assert [c.class_name for c in reply.classifications] == ["dog", "bird"]
    assert [c.confidence for c in reply.classifications] == pytest.approx([0.6, 0.3], abs=1 / 256)


def test_get_classifications_all_when_n_is_zero(module: Module) -> None:
    reply = module.vision.GetClassifications(pb.GetClassificationsRequest(
        name=classifier_service(module), image=IMAGES["image/png"], mime_type="image/png"), timeout=30)
    assert [c.class_name for c in reply.classifications] == ["dog", "bird", "cat"]


# --- errors, each followed by a normal call ------------------------------------------------------------------------------

@pytest.mark.parametrize(("data", "mime"), [
    (b"\xff\xd8\xff\xe0 this is not a jpeg", "image/jpeg"),
    (IMAGES["image/png"][:200], "image/png"),  # truncated
    (b"", "image/png"),
    (b"GIF89a\x01\x00\x01\x00", "image/jpeg"),  # says JPEG, is a (truncated) GIF: not a supported format
    (b"RGBA\x00\x00\x00\x10\x00\x00\x00\x10\x00", "image/vnd.viam.rgba"),  # header says 16x16, no pixels
    (b"random bytes", ""),
])
def test_corrupt_image_is_invalid_argument(module: Module, data: bytes, mime: str) -> None:
    name = detector_service(module)
    err = rpc_error(lambda: module.vision.GetDetections(pb.GetDetectionsRequest(name=name, image=data, mime_type=mime),
                                                        timeout=30))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    assert_still_serving(module)


@pytest.mark.parametrize("mime", ["image/gif", "image/webp", "text/plain", "image/vnd.viam.dep"])
def test_unsupported_mime_is_invalid_argument(module: Module, mime: str) -> None:
    name = classifier_service(module)
    err = rpc_error(lambda: module.vision.GetClassifications(pb.GetClassificationsRequest(
        name=name, image=IMAGES["image/png"], mime_type=mime), timeout=30))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert mime in err.details() and "image/jpeg" in err.details()  # says what came and what is supported
    assert_still_serving(module)


def test_object_point_clouds_errors_name_what_is_missing(module: Module) -> None:
    # No parent here: the camera cannot be read. A classifier has no boxes. Only PCD is answered.
    det, cls = detector_service(module), classifier_service(module)
    err = rpc_error(lambda: module.vision.GetObjectPointClouds(pb.GetObjectPointCloudsRequest(
        name=det, camera_name="cam", mime_type="pointcloud/pcd"), timeout=30))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION and "'cam'" in err.details() and "parent" in err.details()
    err = rpc_error(lambda: module.vision.GetObjectPointClouds(pb.GetObjectPointCloudsRequest(
        name=cls, camera_name="cam"), timeout=30))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION and "not a detector" in err.details()
    err = rpc_error(lambda: module.vision.GetObjectPointClouds(pb.GetObjectPointCloudsRequest(
        name=det, camera_name="cam", mime_type="pointcloud/las"), timeout=30))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "pointcloud/pcd" in err.details()
    err = rpc_error(lambda: module.vision.GetDetections3D(pb.GetDetections3DRequest(name=det), timeout=30))
    assert err.code() == grpc.StatusCode.UNIMPLEMENTED and "not supported" in err.details()
    assert_still_serving(module)


def test_from_camera_without_a_parent_is_failed_precondition(module: Module) -> None:
    det, cls = detector_service(module), classifier_service(module)
    calls = [
        lambda: module.vision.GetDetectionsFromCamera(pb.GetDetectionsFromCameraRequest(name=det, camera_name="cam"),
                                                      timeout=30),
        lambda: module.vision.GetDetectionsFromCamera(pb.GetDetectionsFromCameraRequest(name=det), timeout=30),
        lambda: module.vision.GetClassificationsFromCamera(pb.GetClassificationsFromCameraRequest(
            name=cls, camera_name="cam", n=1), timeout=30),
        lambda: module.vision.CaptureAllFromCamera(pb.CaptureAllFromCameraRequest(
            name=det, camera_name="cam", return_image=True, return_detections=True), timeout=30),
    ]
    for call in calls:
        err = rpc_error(call)
        assert err.code() == grpc.StatusCode.FAILED_PRECONDITION, err.details()
        assert "'cam'" in err.details() and "parent" in err.details()
        assert_still_serving(module)


def test_from_camera_without_any_camera_name(module: Module) -> None:
    err = rpc_error(lambda: module.vision.GetClassificationsFromCamera(pb.GetClassificationsFromCameraRequest(
        name=classifier_service(module), n=1), timeout=30))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "camera_name" in err.details()
    assert_still_serving(module)


def test_unknown_vision_service_is_not_found(module: Module) -> None:
    detector_service(module)
    err = rpc_error(lambda: module.vision.GetDetections(pb.GetDetectionsRequest(
        name="nope", image=IMAGES["image/png"], mime_type="image/png"), timeout=30))
    assert err.code() == grpc.StatusCode.NOT_FOUND and "'nope'" in err.details() and "'vdet'" in err.details()
    assert_still_serving(module)


def test_wrong_role_is_failed_precondition(module: Module) -> None:
    err = rpc_error(lambda: module.vision.GetDetections(pb.GetDetectionsRequest(
        name=classifier_service(module), image=IMAGES["image/png"], mime_type="image/png"), timeout=30))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION and "GetClassifications" in err.details()
    assert_still_serving(module)


# --- properties, DoCommand, status ----------------------------------------------------------------------------------------

def test_get_properties(module: Module) -> None:
    props = module.vision.GetProperties(pb.GetPropertiesRequest(name=detector_service(module)), timeout=30)
    assert props.detections_supported and not props.classifications_supported
    assert props.object_point_clouds_supported is True  # a detector's boxes + a depth camera give 3D objects
    assert props.HasField("default_camera") and props.default_camera == "cam"
    props = module.vision.GetProperties(pb.GetPropertiesRequest(name=classifier_service(module)), timeout=30)
    assert props.classifications_supported and not props.detections_supported
    assert not props.object_point_clouds_supported
    assert not props.HasField("default_camera")  # set only when configured


def do_command(m: Module, name: str, command: dict[str, Any]) -> dict[str, Any]:
    reply = m.vision.DoCommand(common_pb2.DoCommandRequest(name=name, command=dict_to_struct(command)), timeout=30)
    return struct_to_dict(reply.result)


def test_do_command(module: Module) -> None:
    # A service of its own: set_thresholds must not change what the other tests see.
    name = module.once("vthresholds", lambda: module.service("vthresholds", "det"))
    detector_service(module)
    config = do_command(module, name, {"command": "get_config"})
    assert config["role"] == "detector" and config["mlmodel_location"] == "in-process"
    assert config["input"]["width"] == 32 and config["thresholds"]["default_minimum_confidence"] == 0
    reply = do_command(module, name, {"command": "set_thresholds", "default_minimum_confidence": 0.5,
                                      "allowed_labels": ["DOG"]})
    assert reply["thresholds"]["allowed_labels"] == ["dog"]
    found = module.vision.GetDetections(pb.GetDetectionsRequest(name=name, image=IMAGES["image/bmp"],
                                                                mime_type="image/bmp"), timeout=30)
    assert [d.class_name for d in found.detections] == ["dog"]
    stats = do_command(module, name, {"command": "stats"})
    assert stats["stages"]["infer"]["count"] >= 1 and set(stats["stages"]) >= {"decode", "preprocess", "infer",
                                                                                   "postprocess"}
    for bad in ({"command": "set_thresholds", "iou_threshold": 5}, {"command": "set_thresholds", "bogus": 1}):
        err = rpc_error(lambda bad=bad: do_command(module, name, bad))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert do_command(module, name, {"command": "get_config"})["thresholds"]["default_minimum_confidence"] == 0.5
    err = rpc_error(lambda: do_command(module, name, {"command": "explode"}))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    for known in ("get_config", "set_thresholds", "stats"):
        assert known in err.details()
    assert_still_serving(module)


def test_get_status(module: Module) -> None:
    name = detector_service(module)
    assert_still_serving(module)
    reply = module.vision.GetStatus(common_pb2.GetStatusRequest(name=name), timeout=30)
    status = struct_to_dict(reply.result)
    json.dumps(status)
    assert status["mlmodel_name"] == "det" and status["camera_name"] == "cam"
    assert status["stages"]["infer"]["count"] >= 1


# --- config through the module service ------------------------------------------------------------------------------------

def test_validate_config_declares_mlmodel_and_camera(module: Module) -> None:
    reply = module.process.validate("v", VISION, {"mlmodel_name": "det", "camera_name": "cam"})
    assert sorted(reply.dependencies) == ["cam", "det"]
    reply = module.process.validate("v", VISION, {"mlmodel_name": "det"})
    assert list(reply.dependencies) == ["det"]


@pytest.mark.parametrize(("attrs", "attribute"), [
    ({}, "mlmodel_name"),
    ({"mlmodel_name": "det", "xmin_ymin_xmax_ymax_order": [0, 1, 1, 2]}, "xmin_ymin_xmax_ymax_order"),
    ({"mlmodel_name": "det", "input_image_std_dev": [1, 0, 1]}, "input_image_std_dev"),
    ({"mlmodel_name": "det", "default_minimum_confidence": 3}, "default_minimum_confidence"),
    ({"mlmodel_name": "det", "label_path": "/nonexistent/labels.txt"}, "label_path"),
    ({"mlmodel_name": "det", "confidence": 0.5}, "confidence"),
])
def test_bad_config_is_rejected_the_same_by_validate_and_add(module: Module, attrs: dict[str, Any],
                                                              attribute: str) -> None:
    detector_service(module)
    validate = rpc_error(lambda: module.process.validate("vbad", VISION, attrs))
    add = rpc_error(lambda: module.process.add("vbad", VISION, attrs))
    assert validate.code() == add.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert attribute in validate.details()
    assert validate.details() == add.details()
    assert_still_serving(module)


# --- the mlmodel's lifecycle --------------------------------------------------------------------------------------------

def test_vision_follows_its_mlmodel(module_process: ModuleProcess, tmp_path: Path) -> None:
    detector_path, classifier_path = tmp_path / "det.tflite", tmp_path / "cls.tflite"
    detector_path.write_bytes(model_factory.detector_model([BOX], [0], [0.9]))
    classifier_path.write_bytes(model_factory.classifier_model([0.25, 0.75]))
    vision = module_process.vision
    request = pb.GetDetectionsRequest(name="v", image=IMAGES["image/png"], mime_type="image/png")

    err = rpc_error(lambda: module_process.add("v", VISION, {"mlmodel_name": "m"}, (MLMODEL_PREFIX + "m",)))
    assert err.code() == grpc.StatusCode.UNAVAILABLE and "'m' is not available" in err.details()

    module_process.add("m", MLMODEL, {"model_path": str(detector_path), "pool_size": 1})
    module_process.add("v", VISION, {"mlmodel_name": "m"}, (MLMODEL_PREFIX + "m",))
    assert [box_of(d) for d in vision.GetDetections(request, timeout=30).detections] == [BOX_PX]

    module_process.remove(MLMODEL_PREFIX + "m")
    # Missing for now (retryable), not wrongly configured. A short deadline: the call would otherwise wait up to
    # 3 s for viam-server to add the mlmodel back (tests/e2e/test_reliability_field.py).
    err = rpc_error(lambda: vision.GetDetections(request, timeout=0.5))
    assert err.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED), err.details()
    err = rpc_error(lambda: vision.GetProperties(pb.GetPropertiesRequest(name="v"), timeout=30))
    assert err.code() == grpc.StatusCode.UNAVAILABLE and "'m' is not available" in err.details()

    module_process.add("m", MLMODEL, {"model_path": str(detector_path), "pool_size": 1})
    assert [box_of(d) for d in vision.GetDetections(request, timeout=30).detections] == [BOX_PX]

    module_process.reconfigure("m", MLMODEL, {"model_path": str(classifier_path), "pool_size": 1})
    props = vision.GetProperties(pb.GetPropertiesRequest(name="v"), timeout=30)
    assert props.classifications_supported and not props.detections_supported
    reply = vision.GetClassifications(pb.GetClassificationsRequest(name="v", image=IMAGES["image/bmp"],
                                                                   mime_type="image/bmp", n=1), timeout=30)
    assert [(c.class_name, c.confidence) for c in reply.classifications] == [("1", 0.75)]

    module_process.remove(VISION_PREFIX + "v")
    err = rpc_error(lambda: vision.GetProperties(pb.GetPropertiesRequest(name="v"), timeout=30))
    assert err.code() == grpc.StatusCode.NOT_FOUND


# --- real models through the socket ------------------------------------------------------------------------------------

SSD = "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite"
SSD_PLAIN = "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29_no_metadata.tflite"
MNV2 = "mobilenet_v2_1.0_224_quant.tflite"
MNV1_FLOAT = "mobilenet_v1_0.25_224_1_default_1.tflite"
VWW = "vww_96_int8.tflite"
IMAGE_SIZES = {"cat.bmp": (512, 341), "parrot.jpg": (512, 929), "grace_hopper.bmp": (512, 600),
               "sparrow.png": (1280, 851), "face.jpg": (512, 355), "burger.jpg": (480, 325)}
MIMES = {".bmp": "image/bmp", ".jpg": "image/jpeg", ".png": "image/png"}


@cache
def reference() -> dict[str, Any]:
    return json.loads((require_testdata("reference_results.json") / "reference_results.json").read_text())


def real_image(name: str) -> tuple[bytes, str]:
    path = require_testdata(f"images/{name}") / "images" / name
    return path.read_bytes(), MIMES[path.suffix]


def real_service(m: Module, model: str, label_file: str | None = None, **attrs: Any) -> str:
    require_testdata(f"models/{model}")
    mlmodel = m.once("ml-" + model, lambda: m.mlmodel("ml-" + model, TESTDATA / "models" / model))
    name = f"v-{model}-{label_file}-{sorted(attrs.items())}"
    if label_file:
        attrs["label_path"] = str(require_testdata(f"labels/{label_file}") / "labels" / label_file)
    return m.once(name, lambda: m.service(name, mlmodel, **attrs))


@pytest.mark.parametrize("image_name", ["cat.bmp", "parrot.jpg", "grace_hopper.bmp"])
@pytest.mark.parametrize(("model", "label_file"), [(SSD, None), (SSD_PLAIN, "coco_labels.txt")],
                         ids=["metadata", "no-metadata+label_path"])
def test_real_ssd_matches_the_reference(module: Module, model: str, label_file: str | None, image_name: str) -> None:
    name = real_service(module, model, label_file, default_minimum_confidence=0.5)
    data, mime = real_image(image_name)
    found = module.vision.GetDetections(pb.GetDetectionsRequest(name=name, image=data, mime_type=mime),
                                        timeout=60).detections
    expected = reference()["models"][model]["results"][image_name]["detections_ge_0.5"]
    assert [d.class_name for d in found] == [r["label"] for r in expected]
    for d, ref in zip(found, expected):
        assert d.confidence == pytest.approx(ref["score"], abs=0.02)
        ours = [d.y_min_normalized, d.x_min_normalized, d.y_max_normalized, d.x_max_normalized]
        np.testing.assert_allclose(ours, np.clip(ref["box"], 0, 1), atol=0.02)
        check_wire_detection(d, *IMAGE_SIZES[image_name])


def test_real_ssd_on_every_format(module: Module) -> None:
    """sparrow.png is RGBA; cat.bmp sent as BMP and as raw RGBA gives the same answer."""
    name = real_service(module, SSD, None, default_minimum_confidence=0.5)
    data, mime = real_image("sparrow.png")
    sparrow = module.vision.GetDetections(pb.GetDetectionsRequest(name=name, image=data, mime_type=mime), timeout=60)
    assert sparrow.detections[0].class_name == "bird" and sparrow.detections[0].confidence >= 0.75
    check_wire_detection(sparrow.detections[0], *IMAGE_SIZES["sparrow.png"])
    bmp, _ = real_image("cat.bmp")
    raw = encode_rgba(np.asarray(PIL.Image.open(io.BytesIO(bmp)).convert("RGB")))
    answers = [module.vision.GetDetections(pb.GetDetectionsRequest(name=name, image=image, mime_type=mime),
                                           timeout=60).detections
               for image, mime in ((bmp, "image/bmp"), (raw, "image/vnd.viam.rgba"), (raw, ""))]
    assert answers[0][0].class_name == "cat" and answers[0][0].confidence >= 0.7
    assert answers[0] == answers[1] == answers[2]


@pytest.mark.parametrize(("model", "label_file", "image_name", "label", "minimum"), [
    (MNV2, None, "grace_hopper.bmp", "military uniform", 0.85),
    (MNV2, None, "parrot.jpg", "macaw", 0.99),
    (MNV2, None, "burger.jpg", "cheeseburger", 0.95),
    (MNV1_FLOAT, "imagenet_labels.txt", "cat.bmp", "Egyptian cat", None),
    (MNV1_FLOAT, "imagenet_labels.txt", "burger.jpg", "cheeseburger", None),
    (VWW, "vww_labels.txt", "face.jpg", "person", 0.95),
    (VWW, "vww_labels.txt", "cat.bmp", "notperson", 0.9),
], ids=lambda v: v if isinstance(v, str) else None)
def test_real_classifier_matches_the_reference(module: Module, model: str, label_file: str | None, image_name: str,
                                               label: str, minimum: float | None) -> None:
    name = real_service(module, model, label_file)
    data, mime = real_image(image_name)
    found = module.vision.GetClassifications(pb.GetClassificationsRequest(name=name, image=data, mime_type=mime, n=3),
                                             timeout=60).classifications
    ref = reference()["models"][model]["results"][image_name][0]
    assert found[0].class_name == ref["label"] and ref["label"].startswith(label)
    assert found[0].confidence == pytest.approx(ref["score"], abs=0.02)
    if minimum is not None:
        assert found[0].confidence >= minimum
    assert [c.confidence for c in found] == sorted((c.confidence for c in found), reverse=True)


def test_unsupported_layout_and_bad_remap_are_refused_at_add_resource(module: Module) -> None:
    """Through AddResource: an output layout the service cannot read is FAILED_PRECONDITION listing the outputs and
    the supported layouts; a remap_output_names entry naming no output is INVALID_ARGUMENT naming the entry."""
    module.mlmodel("heat", model_factory.yolo_model(np.zeros((1, 7, 7, 5)), output_name="heatmap"))
    err = rpc_error(lambda: module.service("vheat", "heat"))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION, err.details()
    assert "'heatmap' float32 [1, 7, 7, 5]" in err.details() and "yolov8" in err.details()
    rows = np.zeros((84, 84))  # a 64 x 64 YOLOv8 head: 8x8 + 4x4 + 2x2 = 84 anchors
    module.mlmodel("yolo", model_factory.yolo_model(rows[None]))
    err = rpc_error(lambda: module.service("vyolo", "yolo", remap_output_names={"detection_boxes": "location"}))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "'detection_boxes'" in err.details()
    module.service("vyolo", "yolo")  # zero-config it is served
    reply = module.vision.DoCommand(common_pb2.DoCommandRequest(name="vyolo", command=dict_to_struct(
        {"command": "get_config"})), timeout=30)
    assert struct_to_dict(reply.result)["layout"]["layout"] == "yolov8"
    assert_still_serving(module)
