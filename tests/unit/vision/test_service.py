"""The in-process vision service: DoCommand, properties, mlmodel lifecycle, cameras without a parent, and the real
models of shared/testdata against reference_results.json."""

from __future__ import annotations

import io
import json
import logging
import sys
import threading
from collections.abc import Iterator
from functools import cache
from typing import Any

import numpy as np
import PIL.Image
import pytest

from devkit import models as model_factory
from devkit.testdata import require_testdata
from module.errors import ConfigError, FailedPreconditionError, InvalidInputError, ModuleError, UnavailableError
from module.mlmodel.config import TFLiteConfig
from module.mlmodel.model import TFLiteModel
from module.mlmodel.types import ModelInfo
from module.resource.manager import ResourceManager
from module.resource.names import MLMODEL_API
from module.resource.registry import ResourceContext
from module.vision.config import VisionConfig
from module.vision.service import VisionService
from tests.support.vision_harness import BOX, BOX_PX, Harness, boxes_of, check_detection, harness, image_bytes

__all__ = ["harness"]  # the fixture

LABELS = ["cat", "dog", "bird"]


def detector(**kwargs: Any) -> bytes:
    boxes = [BOX, (0.0, 0.0, 0.5, 0.5), (0.5, 0.5, 1.0, 1.0)]
    return model_factory.detector_model(boxes, [0, 1, 2], [0.9, 0.6, 0.3], **kwargs)


def classifier(**kwargs: Any) -> bytes:
    return model_factory.classifier_model([0.1, 0.6, 0.3], **kwargs)


# --- DoCommand ---------------------------------------------------------------------------------------------------------

def test_get_config_reports_the_effective_settings(harness: Harness) -> None:
    service = harness.service(detector(metadata=True, embedded_labels=LABELS), camera_name="cam",
                              default_minimum_confidence=0.25, iou_threshold=0.5, resize_mode="letterbox")
    config = service.do_command({"command": "get_config"})
    json.dumps(config)  # must survive a Struct: plain JSON values only
    assert config["mlmodel_name"] == "mlmodel" and config["mlmodel_location"] == "in-process"
    assert config["camera_name"] == "cam" and config["resize_mode"] == "letterbox"
    assert config["role"] == "detector"
    assert config["input"] == {"name": "image", "dtype": "uint8", "width": 32, "height": 32, "channels_first": False,
                               "bgr": False}
    outputs = config["outputs"]
    assert (outputs["location"], outputs["score"], outputs["category"], outputs["n_detections"]) == (
        "location", "score", "category", "number of detections")
    assert outputs["box_order"] == [1, 0, 3, 2] and outputs["normalized"] is True
    assert config["labels"] == 3
    assert config["thresholds"]["default_minimum_confidence"] == 0.25
    assert config["thresholds"]["iou_threshold"] == 0.5


def test_get_config_of_a_classifier(harness: Harness) -> None:
    config = harness.service(classifier()).do_command({"command": "get_config"})
    assert config["role"] == "classifier" and config["outputs"] == {"probability": "probability"}
    assert config["labels"] == 0


def test_set_thresholds_changes_results(harness: Harness) -> None:
    service = harness.service(detector(), label_path=harness.labels(LABELS))
    assert [d.class_name for d in service.detections(image_bytes())] == ["cat", "dog", "bird"]
    reply = service.do_command({"command": "set_thresholds", "default_minimum_confidence": 0.5})
    assert reply["thresholds"]["default_minimum_confidence"] == 0.5
    assert [d.class_name for d in service.detections(image_bytes())] == ["cat", "dog"]
    service.do_command({"command": "set_thresholds", "label_confidences": {"bird": 0.2}, "allowed_labels": ["bird",
                                                                                                           "dog"]})
    assert [d.class_name for d in service.detections(image_bytes())] == ["dog", "bird"]
    service.do_command({"command": "set_thresholds", "max_detections": 1.0})  # Struct numbers are floats
    assert [d.class_name for d in service.detections(image_bytes())] == ["dog"]
    thresholds = service.do_command({"command": "get_config"})["thresholds"]
    assert thresholds == {"default_minimum_confidence": 0.5, "label_confidences": {"bird": 0.2},
                          "allowed_labels": ["bird", "dog"], "iou_threshold": None, "class_agnostic_nms": False,
                          "max_detections": 1}


def test_set_thresholds_nms_at_run_time(harness: Harness) -> None:
    boxes = [(0.1, 0.1, 0.5, 0.5), (0.11, 0.11, 0.51, 0.51)]
    service = harness.service(model_factory.detector_model(boxes, [0, 1], [0.9, 0.8]))
    assert len(service.detections(image_bytes())) == 2
    service.do_command({"command": "set_thresholds", "iou_threshold": 0.5})
    assert len(service.detections(image_bytes())) == 2  # different classes
    service.do_command({"command": "set_thresholds", "class_agnostic_nms": True})
    assert len(service.detections(image_bytes())) == 1
    service.do_command({"command": "set_thresholds", "iou_threshold": None})  # null switches NMS off again
    assert len(service.detections(image_bytes())) == 2


@pytest.mark.parametrize("change", [
    {"default_minimum_confidence": 0.9, "iou_threshold": 2},  # one bad value spoils the whole change
    {"default_minimum_confidence": 0.9, "max_detections": 0},
    {"default_minimum_confidence": 0.9, "label_confidences": {"cat": "high"}},
    {"default_minimum_confidence": 0.9, "confidence": 0.5},  # unknown key
    {"default_minimum_confidence": 0.9, "mlmodel_name": "other"},  # not a threshold
    {"default_minimum_confidence": "0.9"},
], ids=lambda c: ",".join(c))
def test_set_thresholds_is_validated_and_atomic(harness: Harness, change: dict[str, Any]) -> None:
    service = harness.service(detector(), default_minimum_confidence=0.5)
    before = service.do_command({"command": "get_config"})["thresholds"]
    with pytest.raises(ConfigError) as err:
        service.do_command({"command": "set_thresholds", **change})
    bad = next(k for k in change if k != "default_minimum_confidence") if len(change) > 1 else "default_minimum_confidence"
    assert bad in str(err.value)
    assert service.do_command({"command": "get_config"})["thresholds"] == before
    assert len(service.detections(image_bytes())) == 2  # still the old 0.5


def test_set_thresholds_is_seen_whole_by_concurrent_calls(harness: Harness) -> None:
    service = harness.service(detector(), label_path=harness.labels(LABELS))
    settings = [{"default_minimum_confidence": 0.0, "allowed_labels": None},
                {"default_minimum_confidence": 0.5, "allowed_labels": ["bird"]}]
    allowed = {("cat", "dog", "bird"), ()}  # all, or none (bird is below 0.5): never a mix of the two settings
    seen: list[tuple[str, ...]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def call() -> None:
        try:
            while not stop.is_set():
                seen.append(tuple(d.class_name for d in service.detections(image_bytes(16, 16))))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(3)]
    for t in threads:
        t.start()
    switches = 0
    while (len(seen) < 60 or switches < 60) and not errors:  # by count, not by time
        service.do_command({"command": "set_thresholds", **settings[switches % 2]})
        switches += 1
    stop.set()
    for t in threads:
        t.join()
    assert not errors
    assert set(seen) <= allowed


def test_concurrent_set_thresholds_do_not_lose_each_others_keys(harness: Harness) -> None:
    """Each set_thresholds merges into the current thresholds; two at once must not undo one another."""
    service = harness.service(classifier())
    lost: list[tuple[str, Any, Any]] = []

    def worker(key: str, values: list[Any]) -> None:
        for value in values:
            service.do_command({"command": "set_thresholds", key: value})
            now = service.do_command({"command": "get_config"})["thresholds"][key]
            if now != value:  # nobody else sets this key: anything else is a lost update
                lost.append((key, value, now))

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often, so a read-modify-write race shows in a few hundred calls
    try:
        threads = [threading.Thread(target=worker, args=("max_detections", list(range(1, 301)))),
                   threading.Thread(target=worker, args=("default_minimum_confidence", [i / 300 for i in range(300)])),
                   threading.Thread(target=worker, args=("iou_threshold", [i / 300 for i in range(300)]))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert not lost


def test_stats_counts_each_stage(harness: Harness) -> None:
    service = harness.service(detector())
    assert service.do_command({"command": "stats"}) == {"stages": {}, "errors": 0}
    for _ in range(3):
        service.detections(image_bytes())
    with pytest.raises(InvalidInputError):
        service.detections(b"not an image", "image/png")
    stats = service.do_command({"command": "stats"})
    json.dumps(stats)
    stages = stats["stages"]
    assert {name: stages[name]["count"] for name in ("preprocess", "infer", "postprocess")} == {
        "preprocess": 3, "infer": 3, "postprocess": 3}
    assert stages["decode"]["count"] == 4  # the failed decode is timed too
    assert stats["errors"] == 1
    for stage in stages.values():
        assert 0 <= stage["mean_ms"] <= stage["max_ms"] and 0 <= stage["last_ms"] <= stage["max_ms"]
    assert service.status()["stages"] == stages


@pytest.mark.parametrize("command", [{"command": "reload"}, {"command": ""}, {}, {"cmd": "stats"},
                                     {"command": 3}])
def test_unknown_command_lists_the_known_ones(harness: Harness, command: dict[str, Any]) -> None:
    service = harness.service(detector())
    with pytest.raises(InvalidInputError) as err:
        service.do_command(command)
    for name in ("get_config", "set_thresholds", "stats"):
        assert name in str(err.value)


# --- properties and roles ------------------------------------------------------------------------------------------------

def test_properties_of_a_detector(harness: Harness) -> None:
    props = harness.service(detector(), camera_name="cam").properties()
    assert props.detections_supported is True and props.classifications_supported is False
    assert props.default_camera == "cam"


def test_properties_of_a_classifier(harness: Harness) -> None:
    props = harness.service(classifier()).properties()
    assert props.detections_supported is False and props.classifications_supported is True
    assert props.default_camera == ""


def test_wrong_role_calls_say_which_call_to_use(harness: Harness) -> None:
    with pytest.raises(FailedPreconditionError, match="GetClassifications"):
        harness.service(classifier()).detections(image_bytes())
    with pytest.raises(FailedPreconditionError, match="GetDetections"):
        harness.service(detector()).classifications(image_bytes())


def test_status(harness: Harness) -> None:
    service = harness.service(classifier(), camera_name="cam")
    service.classifications(image_bytes())
    status = service.status()
    json.dumps(status)
    assert status["mlmodel_name"] == "mlmodel" and status["mlmodel_location"] == "in-process"
    assert status["camera_name"] == "cam" and status["stages"]["infer"]["count"] == 1


# --- the mlmodel's lifecycle ---------------------------------------------------------------------------------------------

def test_create_without_the_mlmodel_fails_clearly(harness: Harness) -> None:
    with pytest.raises(UnavailableError, match="'missing' is not available: it is not in this module"):
        harness.vision("missing")


def test_create_with_an_unusable_model_lists_its_outputs(harness: Harness) -> None:
    harness.model(model_factory.passthrough_model("float32", (1, 8, 8, 3)))
    harness.model(model_factory.add_model(), name="adder")
    with pytest.raises(FailedPreconditionError) as err:
        harness.vision("adder")
    assert "'a'" in str(err.value) and "'b'" in str(err.value)  # two inputs, neither is the image


def test_removed_mlmodel_fails_then_works_when_re_added(harness: Harness) -> None:
    service = harness.service(detector())
    assert len(service.detections(image_bytes())) == 3
    harness.resources.replacement_wait_s = 0  # not waiting for a replacement here: see the next test
    removed = harness.resources.pop(MLMODEL_API, "mlmodel")
    assert removed is not None
    removed.close()
    for call in (lambda: service.detections(image_bytes()), service.properties,
                 lambda: service.do_command({"command": "get_config"})):
        with pytest.raises(UnavailableError, match="'mlmodel' is not available: it was removed .* retry"):
            call()
    assert service.do_command({"command": "stats"})["errors"] == 1
    harness.model(detector())
    assert len(service.detections(image_bytes())) == 3


class _Signal(logging.Handler):
    """Sets ``seen`` when a record containing ``text`` is logged (from any thread)."""

    def __init__(self, text: str) -> None:
        super().__init__(logging.DEBUG)
        self.text, self.seen = text, threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.seen.set()


def test_a_call_while_the_mlmodel_is_replaced_waits_for_the_replacement(harness: Harness) -> None:
    """viam-server reconfigures by RemoveResource, then AddResource: a call in between is answered by the new
    model. The call waits on the manager's condition (woken by put); the test waits for the call's own log line."""
    service = harness.service(detector())
    removed = harness.resources.pop(MLMODEL_API, "mlmodel")
    assert removed is not None
    removed.close()
    harness.resources.replacement_wait_s = 60  # only the put can end this wait in time
    signal = _Signal("waiting for mlmodel 'mlmodel'")
    logger = logging.getLogger("module")  # the default logger of a resource context
    logger.addHandler(signal)
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        outcome: list[Any] = []
        waiter = threading.Thread(target=lambda: outcome.append(service.detections(image_bytes())))
        waiter.start()
        assert signal.seen.wait(30), "the call did not wait for the replacement"
        harness.model(model_factory.detector_model([BOX], [2], [0.8]))  # the replacement: one box, class 2
        waiter.join(30)
    finally:
        logger.removeHandler(signal)
        logger.setLevel(old_level)
    assert [d.class_name for d in outcome[0]] == ["2"]  # answered by the replacement


def test_reconfigured_mlmodel_gets_a_new_plan(harness: Harness) -> None:
    service = harness.service(detector(), default_minimum_confidence=0.5)
    assert boxes_of(service.detections(image_bytes()))[0] == BOX_PX
    # Another detector: other box order (per its metadata), other labels.
    harness.model(detector(box_order=(0, 1, 2, 3), metadata=True, embedded_labels=["x", "y", "z"]))
    found = service.detections(image_bytes())
    assert [d.class_name for d in found] == ["x", "y"]
    assert boxes_of(found)[0] == BOX_PX
    # Now a classifier under the same name.
    harness.model(classifier())
    assert service.properties().classifications_supported is True
    assert [c.class_name for c in service.classifications(image_bytes())] == ["1"]  # 0.1 and 0.3 are below 0.5
    with pytest.raises(FailedPreconditionError):
        service.detections(image_bytes())


class _SlotModel:
    """An mlmodel with nothing but metadata; __slots__ make CPython reuse a freed instance's address at once."""

    __slots__ = ("info", "__weakref__")

    def __init__(self, info: ModelInfo) -> None:
        self.info = info

    def metadata(self) -> ModelInfo:
        return self.info

    def infer(self, inputs: Any) -> dict[str, Any]:
        raise AssertionError("not called")


def test_replaced_model_at_the_same_address_is_not_mistaken_for_the_old(harness: Harness) -> None:
    detector_info = harness.model(detector(), name="d").metadata()
    classifier_info = harness.model(classifier(), name="c").metadata()
    resources = ResourceManager()
    resources.put(MLMODEL_API, "m", _SlotModel(detector_info))  # type: ignore[arg-type]
    service = VisionService.create(ResourceContext("v", (), resources, lambda: None),
                                   VisionConfig.parse({"mlmodel_name": "m"}))
    assert service.properties().detections_supported
    old_id = id(resources.find(MLMODEL_API, "m"))
    resources.pop(MLMODEL_API, "m")  # freed here (the plan cache must not keep it alive) ...
    replacement = _SlotModel(classifier_info)  # ... and in CPython this one usually gets the same address
    reused = id(replacement) == old_id
    resources.put(MLMODEL_API, "m", replacement)  # type: ignore[arg-type]
    assert service.properties().classifications_supported, f"stale plan (address reused: {reused})"


# --- cameras without a parent ----------------------------------------------------------------------------------------

def test_camera_calls_without_a_parent(harness: Harness) -> None:
    service = harness.service(detector(), camera_name="cam")
    for call in (lambda: service.detections_from_camera(""), lambda: service.detections_from_camera("other"),
                 lambda: service.classifications_from_camera("", 1),
                 lambda: service.capture_all("", want_detections=True, want_classifications=True)):
        with pytest.raises(FailedPreconditionError, match="parent"):
            call()
    with pytest.raises(FailedPreconditionError, match="'other'"):
        service.detections_from_camera("other")
    with pytest.raises(FailedPreconditionError, match="'cam'"):
        service.detections_from_camera("")  # the default camera


def test_camera_call_without_any_camera_name(harness: Harness) -> None:
    service = harness.service(detector())
    with pytest.raises(InvalidInputError, match="camera_name"):
        service.detections_from_camera("")


def test_errors_are_module_errors(harness: Harness) -> None:
    """Every failure the caller can cause is a ModuleError (a status code), never a stray exception (INTERNAL)."""
    service = harness.service(detector())
    for data, mime in ((b"", "image/png"), (b"\x89PNG\r\n\x1a\n garbage", "image/png"), (image_bytes(), "image/gif"),
                       (b"GIF89a not supported", "image/jpeg"), (b"RGBA\x00\x00\x00\x02\x00\x00\x00\x02", "image/vnd.viam.rgba")):
        with pytest.raises(ModuleError):
            service.detections(data, mime)


@pytest.mark.parametrize(("fmt", "mode"), [("PNG", "RGBA"), ("PNG", "L"), ("PNG", "P"), ("PNG", "LA"), ("JPEG", "RGB"),
                                           ("JPEG", "L"), ("BMP", "RGB"), ("BMP", "P")])
def test_any_image_mode_and_format(harness: Harness, fmt: str, mode: str) -> None:
    width, height = 131, 77
    out = io.BytesIO()
    PIL.Image.open(io.BytesIO(image_bytes(width, height))).convert(mode).save(out, fmt)
    service = harness.service(detector())
    for mime in ("", f"image/{fmt.lower()}"):
        found = service.detections(out.getvalue(), mime)
        assert boxes_of(found)[0] == (13, 15, 79, 69)  # BOX on 131 x 77
        for d in found:
            check_detection(d, width, height)


# --- real models --------------------------------------------------------------------------------------------------------

SSD = "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite"
SSD_PLAIN = "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29_no_metadata.tflite"
MNV2 = "mobilenet_v2_1.0_224_quant.tflite"
MNV1_FLOAT = "mobilenet_v1_0.25_224_1_default_1.tflite"
MNV1_FLOAT_META = "mobilenet_v1_0.25_224_1_metadata_1.tflite"
VWW = "vww_96_int8.tflite"
TOLERANCE = 0.02


@cache
def reference() -> dict[str, Any]:
    return json.loads((require_testdata("reference_results.json") / "reference_results.json").read_text())


@pytest.fixture(scope="module")
def real_models() -> Iterator[ResourceManager]:
    """The real models, each loaded once for this file (lazily: only those a test asks for)."""
    resources = ResourceManager()
    yield resources
    resources.close_all()


def real_service(resources: ResourceManager, model: str, **attrs: Any) -> VisionService:
    data = require_testdata(f"models/{model}")
    if resources.find(MLMODEL_API, model) is None:
        config = TFLiteConfig.parse({"model_path": str(data / "models" / model), "pool_size": 1})
        resources.put(MLMODEL_API, model, TFLiteModel(config, name=model))
    config = VisionConfig.parse({"mlmodel_name": model, **attrs})
    return VisionService.create(ResourceContext("vision", (), resources, lambda: None), config)


def image(name: str) -> bytes:
    return (require_testdata(f"images/{name}") / "images" / name).read_bytes()


@pytest.mark.parametrize("image_name", ["cat.bmp", "parrot.jpg", "grace_hopper.bmp"])
@pytest.mark.parametrize(("model", "label_file", "label_kind"), [
    (SSD, None, "embedded"),
    (SSD, "coco_labels.txt", "file"),
    (SSD_PLAIN, None, "index"),
    (SSD_PLAIN, "coco_labels.txt", "file"),
], ids=["metadata", "metadata+label_path", "no-metadata", "no-metadata+label_path"])
def test_ssd_matches_the_reference(real_models: ResourceManager, model: str, label_file: str | None, label_kind: str,
                                   image_name: str) -> None:
    attrs: dict[str, Any] = {"default_minimum_confidence": 0.5}
    if label_file:
        attrs["label_path"] = str(require_testdata(f"labels/{label_file}") / "labels" / label_file)
    service = real_service(real_models, model, **attrs)
    found = service.detections(image(image_name))
    expected = reference()["models"][model]["results"][image_name]["detections_ge_0.5"]
    width, height = {"cat.bmp": (512, 341), "parrot.jpg": (512, 929), "grace_hopper.bmp": (512, 600)}[image_name]
    assert len(found) == len(expected), [(d.class_name, d.confidence) for d in found]
    for d, ref in zip(found, expected):
        assert d.class_name == (str(ref["class_id"]) if label_kind == "index" else ref["label"])
        assert d.confidence == pytest.approx(ref["score"], abs=TOLERANCE)
        ours = [d.y_min_normalized, d.x_min_normalized, d.y_max_normalized, d.x_max_normalized]
        np.testing.assert_allclose(ours, np.clip(ref["box"], 0.0, 1.0), atol=TOLERANCE)
        check_detection(d, width, height)


@pytest.mark.parametrize(("model", "label_file", "image_name", "index", "minimum"), [
    (MNV2, None, "grace_hopper.bmp", 653, 0.85),
    (MNV2, None, "cat.bmp", 286, 0.7),
    (MNV2, None, "parrot.jpg", 89, 0.99),
    (MNV2, None, "burger.jpg", 934, 0.95),
    (MNV1_FLOAT, "imagenet_labels.txt", "parrot.jpg", 89, None),
    (MNV1_FLOAT, "imagenet_labels.txt", "burger.jpg", 934, None),
    (MNV1_FLOAT, "imagenet_labels.txt", "cat.bmp", 286, None),
    (MNV1_FLOAT, None, "parrot.jpg", 89, None),
    (MNV1_FLOAT_META, None, "parrot.jpg", 89, None),
    (MNV1_FLOAT_META, None, "burger.jpg", 934, None),
    (MNV1_FLOAT_META, None, "cat.bmp", 286, None),
    (VWW, "vww_labels.txt", "face.jpg", 1, 0.95),
    (VWW, "vww_labels.txt", "cat.bmp", 0, 0.9),
    (VWW, "vww_labels.txt", "parrot.jpg", 0, 0.9),
    (VWW, "vww_labels.txt", "burger.jpg", 0, 0.9),
    (VWW, "vww_labels.txt", "cats_and_dogs.jpg", 0, 0.9),
    (VWW, "vww_labels.txt", "grace_hopper.bmp", 1, None),
])
def test_classifier_matches_the_reference(real_models: ResourceManager, model: str, label_file: str | None,
                                          image_name: str, index: int, minimum: float | None) -> None:
    attrs: dict[str, Any] = {}
    if label_file:
        attrs["label_path"] = str(require_testdata(f"labels/{label_file}") / "labels" / label_file)
    service = real_service(real_models, model, **attrs)
    found = service.classifications(image(image_name), n=3)
    ref = reference()["models"][model]["results"][image_name]
    assert ref[0]["index"] == index  # the table and the JSON agree
    assert len(found) == (2 if model == VWW else 3)  # n=3 of 2 classes gives 2
    assert [c.confidence for c in found] == sorted((c.confidence for c in found), reverse=True)
    top = found[0]
    if label_file or model == MNV2:
        assert top.class_name == ref[0]["label"]
    elif model == MNV1_FLOAT_META:
        assert top.class_name == ref[0]["label"].split(",")[0]  # the embedded file has the short names
    else:
        assert top.class_name == str(index)  # no labels anywhere
    assert top.confidence == pytest.approx(ref[0]["score"], abs=TOLERANCE)
    if minimum is not None:
        assert top.confidence >= minimum
    for c, r in zip(found[1:], ref[1:]):
        if r["score"] > 0.05:  # low ranks tie easily; compare the meaningful ones
            assert c.confidence == pytest.approx(r["score"], abs=TOLERANCE)


def test_sparrow_png_with_alpha(real_models: ResourceManager) -> None:
    found = real_service(real_models, SSD, default_minimum_confidence=0.5).detections(image("sparrow.png"), "image/png")
    assert found and found[0].class_name == "bird" and found[0].confidence >= 0.75
