"""The official Viam Python SDK (viam-sdk from PyPI) as a client of the running module.

The SDK pins protobuf 6 while the module uses protobuf 7, so it lives in its own virtual environment (.venv-sdk in
the repository, gitignored, made once and reused through a stamp file) and runs tests/support/sdk_client_script.py there.
That script dials the module's Unix socket like the SDK does and prints what MLModelClient and VisionClient return;
every answer must equal what the same domain objects (TFLiteModel, VisionService) give in this process for the same
config and input.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import pytest

from devkit.depth_scene import PETS_INTRINSICS, pets_scene, scene_pcd
from devkit.models import passthrough_model
from devkit.standin.launcher import MLMODEL, REPO, VISION, ModuleProcess, short_tempdir
from devkit.standin.parent import CameraFrame, DepthData, FakeParent
from devkit.testdata import require_testdata
from module.errors import ModuleError
from module.gen.common.v1 import common_pb2
from module.gen.service.mlmodel.v1 import mlmodel_pb2
from module.gen.service.vision.v1 import vision_pb2
from module.mlmodel.config import TFLiteConfig
from module.mlmodel.model import TFLiteModel
from module.mlmodel.wire import info_to_proto
from module.parent import ParentClient
from module.resource.manager import ResourceManager
from module.resource.names import MLMODEL_API
from module.resource.registry import ResourceContext
from module.vision.config import VisionConfig
from module.vision.pcd import read_pcd
from module.vision.service import VisionService
from module.vision.servicer import classification_to_proto, detection_to_proto, object_to_proto
from tests.support import families_reference as ref
from tests.support.json_arrays import array_from_json, array_to_json, b64

pytestmark = pytest.mark.timeout(900)

SDK_SPEC = "viam-sdk[mlmodel]==0.85.1"
SDK_VENV = REPO / ".venv-sdk"
SCRIPT = Path(__file__).parents[1] / "support" / "sdk_client_script.py"

SSD = "models/coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite"
CLASSIFIER = "models/mobilenet_v2_1.0_224_quant.tflite"
CAT, PARROT, PETS, BURGER = "images/cat.bmp", "images/parrot.jpg", "images/pets.jpg", "images/burger.jpg"
FACE = "images/face.jpg"
# Model families (v2 test data) served zero-config: mlmodel name -> file. Each gets a vision service "fam-<name>".
FAMILIES = {
    "v8": "yolov8n_int8_dynamic_640_coco80.tflite",             # float I/O, names from temp_meta.txt
    "v11": "yolo11n_full_integer_quant_640_coco80.tflite",      # int8 in and out
    "v5": "yolov5n_int8_640_coco80.tflite",                     # uint8 in and out, no names
    "e2e": "yolo26n_int8_320_coco80.tflite",                    # end-to-end [1, 300, 6]
    "nchw": "yolo_custom_int8_nchw_640_shuttlecock_1class.tflite",  # channels-first input
    "ssd2": "ssd_tf2_mobilenet_v2_fpnlite_320_float_metadata_11class.tflite",  # TF2 output order
}
FAMILY_CLASSIFIER = ("tm", "teachable_machine_float_224_cats_dogs.tflite")
PASSTHROUGH = {  # dtype -> values that exercise the edges of its wire encoding (sign, width, fixed32 packing)
    "int8": [-128, -1, 0, 1, 127], "uint8": [0, 1, 128, 254, 255],
    "int16": [-32768, -3, 0, 3, 32767], "uint16": [0, 1, 255, 256, 65535],
    "int32": [-(2**31), -7, 0, 7, 2**31 - 1], "uint32": [0, 1, 2**16, 2**31, 2**32 - 1],
    "int64": [-(2**63), -9, 0, 9, 2**63 - 1], "uint64": [0, 1, 2**32, 2**63, 2**64 - 1],
    "float32": [-1.5, -0.0, 0.0, 3.25, 1e30], "float64": [-1e300, -2.5, 0.0, 1e-300, math.pi],
}


# --- the SDK's virtual environment -----------------------------------------------------------------------------------

def _unavailable(message: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def sdk_python() -> Path:
    """.venv-sdk/bin/python with the SDK installed; made on first use (about a minute), then reused."""
    python = SDK_VENV / "bin" / "python"
    stamp = SDK_VENV / f".installed-{hashlib.sha256(SDK_SPEC.encode()).hexdigest()[:16]}"
    SDK_VENV.mkdir(exist_ok=True)
    with open(SDK_VENV / ".lock", "w") as lock:  # another test run may be making it right now
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.exists() and python.exists():
            return python
        steps = ([] if python.exists() else [[sys.executable, "-m", "venv", str(SDK_VENV)]]) + [
            [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", SDK_SPEC]]
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True, timeout=900, check=False)
            if done.returncode != 0:
                _unavailable(f"cannot set up the Viam SDK environment ({' '.join(step)}):\n{done.stderr[-3000:]}")
        for old in SDK_VENV.glob(".installed-*"):
            old.unlink()
        stamp.touch()
    return python


# --- the module, the fake parent and the same objects in this process ------------------------------------------------

@dataclass
class World:
    testdata: Path
    module: ModuleProcess
    parent: FakeParent
    data_dir: str  # the module's VIAM_MODULE_DATA
    local_models: dict[str, TFLiteModel] = field(default_factory=dict)
    local_vision: dict[str, VisionService] = field(default_factory=dict)
    resources: ResourceManager = field(default_factory=ResourceManager)
    inputs: dict[str, Any] = field(default_factory=dict)
    sdk: dict[str, Any] = field(default_factory=dict)

    def result(self, call_id: str) -> Any:
        outcome = self.sdk[call_id]
        assert "ok" in outcome, f"{call_id}: the SDK call failed: {outcome}"
        return outcome["ok"]

    def error(self, call_id: str) -> dict[str, str]:
        outcome = self.sdk[call_id]
        assert "error" in outcome, f"{call_id}: expected an error, got {outcome}"
        return outcome["error"]


def image_spec(data: bytes, mime: str) -> dict[str, str]:
    return {"data": b64(data), "mime_type": mime}


def resized(path: Path, size: int) -> np.ndarray:
    rgb = PIL.Image.open(path).convert("RGB").resize((size, size), PIL.Image.Resampling.BILINEAR)
    return np.asarray(rgb, np.uint8)[np.newaxis]


def plan(world: World) -> list[dict[str, Any]]:
    """Every SDK call, in order (the set_thresholds DoCommand, which changes state, comes last)."""
    td = world.testdata
    parrot, burger = (td / PARROT).read_bytes(), (td / BURGER).read_bytes()
    calls: list[dict[str, Any]] = []

    def add(call_id: str, kind: str, method: str, name: str, **args: Any) -> None:
        calls.append({"id": call_id, "kind": kind, "method": method, "name": name, "args": args})

    for model in ("ssd", "cls"):
        add(f"{model}.metadata", "mlmodel", "metadata", model)
        add(f"{model}.infer", "mlmodel", "infer", model, inputs={k: array_to_json(v) for k, v in world.inputs[model].items()})
    for dtype, values in PASSTHROUGH.items():
        add(f"pass-{dtype}.infer", "mlmodel", "infer", f"pass-{dtype}",
            inputs={"input": array_to_json(np.array([values], dtype=dtype))})
    add("nope.infer", "mlmodel", "infer", "nope", inputs={"x": array_to_json(np.zeros((1, 1), np.float32))})
    add("ssd.infer-float", "mlmodel", "infer", "ssd",
        inputs={world.local_models["ssd"].metadata().inputs[0].name: array_to_json(np.zeros((1, 300, 300, 3), np.float32))})
    for image_name, data in (("parrot", parrot), ("burger", burger)):
        add(f"det.get_detections.{image_name}", "vision", "get_detections", "det", image=image_spec(data, "image/jpeg"))
        add(f"clf.get_classifications.{image_name}", "vision", "get_classifications", "clf",
            image=image_spec(data, "image/jpeg"), count=5)
    add("det.get_detections_from_camera", "vision", "get_detections_from_camera", "det", camera="cam")
    add("det.get_object_point_clouds", "vision", "get_object_point_clouds", "det", camera="cam")
    add("clf.get_object_point_clouds", "vision", "get_object_point_clouds", "clf", camera="cam")
    add("clf.get_classifications_from_camera", "vision", "get_classifications_from_camera", "clf", camera="cam", count=3)
    for service in ("det", "clf"):
        add(f"{service}.get_properties", "vision", "get_properties", service)
        add(f"{service}.capture_all", "vision", "capture_all_from_camera", service, camera="cam")
        add(f"{service}.get_config", "vision", "do_command", service, command={"command": "get_config"})
    for key in FAMILIES:
        for image_path in (PETS, FACE):
            add(f"fam-{key}.get_detections.{image_path}", "vision", "get_detections", f"fam-{key}",
                image=image_spec((td / image_path).read_bytes(), "image/jpeg"))
        add(f"fam-{key}.get_config", "vision", "do_command", f"fam-{key}", command={"command": "get_config"})
    add("fam-tm.get_classifications", "vision", "get_classifications", "fam-tm",
        image=image_spec((td / PETS).read_bytes(), "image/jpeg"), count=2)
    add("clf.get_detections", "vision", "get_detections", "clf", image=image_spec(parrot, "image/jpeg"))
    add("det.unknown_command", "vision", "do_command", "det", command={"command": "self_destruct"})
    add("det.set_thresholds", "vision", "do_command", "det",
        command={"command": "set_thresholds", "default_minimum_confidence": 0.6, "allowed_labels": ["bird", "dog"]})
    return calls


@pytest.fixture(scope="module")
def world(sdk_python: Path) -> Iterator[World]:
    family_files = [f"models/{f}" for f in (*FAMILIES.values(), FAMILY_CLASSIFIER[1])]
    td = require_testdata(SSD, CLASSIFIER, CAT, PARROT, PETS, BURGER, FACE, *family_files)
    directory = short_tempdir()
    parent = FakeParent(os.path.join(directory, "parent.sock"))
    parent.cameras["cam"] = CameraFrame((td / PETS).read_bytes(), "image/jpeg")
    # ... and a depth camera: a box behind each dog the SSD finds (devkit/depth_scene.py).
    pixels = np.asarray(PIL.Image.open(td / PETS).convert("RGB"))
    i = PETS_INTRINSICS
    parent.point_clouds["cam"] = DepthData(scene_pcd(pets_scene(), pixels), (i.width, i.height, i.fx, i.fy, i.ppx, i.ppy))
    module = ModuleProcess(socket_dir=directory)
    w = World(td, module, parent, data_dir=os.path.join(directory, "data"))
    local_parent = ParentClient(parent.address)
    try:
        module.wait_for_socket()
        module.ready(parent.address)
        configs = {"ssd": {"model_path": str(td / SSD)}, "cls": {"model_path": str(td / CLASSIFIER)}}
        for dtype in PASSTHROUGH:
            path = os.path.join(directory, f"pass-{dtype}.tflite")
            Path(path).write_bytes(passthrough_model(dtype, (1, 5)))
            configs[f"pass-{dtype}"] = {"model_path": path, "pool_size": 1}
        for key, file in (*FAMILIES.items(), FAMILY_CLASSIFIER):
            configs[key] = {"model_path": str(td / "models" / file), "pool_size": 1}  # zero-config: only the file
        resources = w.resources
        with pytest.MonkeyPatch.context() as env:
            # Embedded label files are extracted under $VIAM_MODULE_DATA: use the module's, so paths compare equal.
            env.setenv("VIAM_MODULE_DATA", w.data_dir)
            for name, attrs in configs.items():
                module.add(name, MLMODEL, attrs)
                w.local_models[name] = TFLiteModel(TFLiteConfig.parse(attrs), name=name)
                resources.put(MLMODEL_API, name, w.local_models[name])
        visions = {"det": {"mlmodel_name": "ssd", "camera_name": "cam"}, "clf": {"mlmodel_name": "cls"},
                   **{f"fam-{key}": {"mlmodel_name": key} for key in (*FAMILIES, FAMILY_CLASSIFIER[0])}}
        for name, attrs in visions.items():
            module.add(name, VISION, attrs, (f"rdk:service:mlmodel/{attrs['mlmodel_name']}",))
            context = ResourceContext(name=name, dependencies=(), resources=resources, parent=lambda: local_parent)
            w.local_vision[name] = VisionService.create(context, VisionConfig.parse(attrs))
        w.inputs = {"ssd": {w.local_models["ssd"].metadata().inputs[0].name: resized(td / CAT, 300)},
                    "cls": {w.local_models["cls"].metadata().inputs[0].name: resized(td / PARROT, 224)}}

        plan_path = os.path.join(directory, "plan.json")
        Path(plan_path).write_text(json.dumps({"socket": module.socket, "calls": plan(w)}))
        done = subprocess.run([str(sdk_python), str(SCRIPT), plan_path], capture_output=True, text=True, timeout=300,
                              check=False, cwd=directory)  # not the repo: the SDK side must not see module/
        assert done.returncode == 0, f"SDK script failed:\n{done.stderr[-5000:]}\n{module.log()[-3000:]}"
        w.sdk = json.loads(done.stdout)
        yield w
    finally:
        local_parent.close()
        for model in w.local_models.values():
            model.close()
        module.close()
        parent.close()
        shutil.rmtree(directory, ignore_errors=True)


def detections(protos: list[str]) -> list[vision_pb2.Detection]:
    return [vision_pb2.Detection.FromString(base64.b64decode(p)) for p in protos]


def classifications(protos: list[str]) -> list[vision_pb2.Classification]:
    return [vision_pb2.Classification.FromString(base64.b64decode(p)) for p in protos]


def as_json(value: Any) -> Any:
    """JSON values as a Struct carries them: every number a float, no None-valued keys (unset is absent)."""
    if isinstance(value, Mapping):
        return {k: as_json(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [as_json(v) for v in value]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return value


# --- MLModelClient ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("model", ["ssd", "cls"])
def test_metadata(world: World, model: str) -> None:
    got = mlmodel_pb2.Metadata.FromString(base64.b64decode(world.result(f"{model}.metadata")["proto"]))
    assert got == info_to_proto(world.local_models[model].metadata())
    assert got.input_info and got.output_info
    # The embedded label file was extracted into the module's data directory, where a vision service can read it.
    labels = [t.extra.fields["labels"].string_value for t in got.output_info if "labels" in t.extra.fields]
    assert labels and all(path.startswith(world.data_dir + os.sep) and os.path.isfile(path) for path in labels)


@pytest.mark.parametrize("model", ["ssd", "cls"])
def test_infer_real_models(world: World, model: str) -> None:
    got = {k: array_from_json(v) for k, v in world.result(f"{model}.infer")["outputs"].items()}
    expected = world.local_models[model].infer(world.inputs[model])
    assert set(got) == set(expected)
    for name, array in expected.items():
        assert got[name].dtype == array.dtype, name
        np.testing.assert_array_equal(got[name], array, err_msg=name)


def test_infer_real_classifier_result(world: World) -> None:
    """Not only equal: right. parrot.jpg through mobilenet_v2 is 'macaw' (index 89) per the reference data."""
    (probs,) = (array_from_json(v) for v in world.result("cls.infer")["outputs"].values())
    assert int(np.argmax(probs)) == 89


@pytest.mark.parametrize("dtype", list(PASSTHROUGH))
def test_infer_every_tensor_type_round_trips(world: World, dtype: str) -> None:
    sent = np.array([PASSTHROUGH[dtype]], dtype=dtype)
    outcome = world.sdk[f"pass-{dtype}.infer"]
    try:
        expected = world.local_models[f"pass-{dtype}"].infer({"input": sent})["output"]
    except ModuleError as exc:  # a runtime that cannot run this dtype: the SDK must get the same status
        assert outcome.get("error", {}).get("status") == exc.code.name, outcome
        return
    got = array_from_json(world.result(f"pass-{dtype}.infer")["outputs"]["output"])
    assert got.dtype == expected.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(got, sent)
    np.testing.assert_array_equal(got, expected)


def test_mlmodel_errors_reach_the_sdk_with_their_codes(world: World) -> None:
    missing = world.error("nope.infer")
    assert missing["status"] == "NOT_FOUND" and "nope" in missing["message"]
    wrong = world.error("ssd.infer-float")
    assert wrong["status"] == "INVALID_ARGUMENT"
    with pytest.raises(ModuleError) as local:
        world.local_models["ssd"].infer({world.local_models["ssd"].metadata().inputs[0].name:
                                         np.zeros((1, 300, 300, 3), np.float32)})
    assert local.value.code.name == wrong["status"]


# --- VisionClient ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("image", ["parrot", "burger"])
def test_get_detections(world: World, image: str) -> None:
    data = (world.testdata / {"parrot": PARROT, "burger": BURGER}[image]).read_bytes()
    got = detections(world.result(f"det.get_detections.{image}")["protos"])
    expected = [detection_to_proto(d) for d in world.local_vision["det"].detections(data, "image/jpeg")]
    assert got == expected
    assert got[0].class_name == {"parrot": "bird", "burger": "sandwich"}[image] and got[0].confidence >= 0.75
    for d in got:  # what viam-server's Go client insists on
        assert all(d.HasField(f) for f in ("x_min", "y_min", "x_max", "y_max")) and d.x_max_normalized > 0


@pytest.mark.parametrize("image", ["parrot", "burger"])
def test_get_classifications(world: World, image: str) -> None:
    data = (world.testdata / {"parrot": PARROT, "burger": BURGER}[image]).read_bytes()
    got = classifications(world.result(f"clf.get_classifications.{image}")["protos"])
    expected = [classification_to_proto(c) for c in world.local_vision["clf"].classifications(data, "image/jpeg", 5)]
    assert got == expected and len(got) == 5
    assert got[0].class_name.startswith({"parrot": "macaw", "burger": "cheeseburger"}[image])


def test_from_camera(world: World) -> None:
    got = detections(world.result("det.get_detections_from_camera")["protos"])
    assert got == [detection_to_proto(d) for d in world.local_vision["det"].detections_from_camera("cam")]
    assert [d.class_name for d in got if d.confidence >= 0.7] == ["dog", "dog"]  # pets.jpg, reference data
    got_c = classifications(world.result("clf.get_classifications_from_camera")["protos"])
    assert got_c == [classification_to_proto(c) for c in world.local_vision["clf"].classifications_from_camera("cam", 3)]
    assert len(got_c) == 3


@pytest.mark.parametrize("service", ["det", "clf"])
def test_capture_all_from_camera(world: World, service: str) -> None:
    got = world.result(f"{service}.capture_all")
    local = world.local_vision[service].capture_all("cam", want_detections=True, want_classifications=True)
    assert base64.b64decode(got["image"]["data"]) == local.frame.data
    assert got["image"]["mime_type"] == "image/jpeg"
    assert detections(got["detections"]) == [detection_to_proto(d) for d in local.detections or ()]
    assert classifications(got["classifications"]) == [classification_to_proto(c) for c in local.classifications or ()]
    assert (bool(got["detections"]), bool(got["classifications"])) == ((True, False) if service == "det" else (False, True))


def test_get_object_point_clouds(world: World) -> None:
    got = [common_pb2.PointCloudObject.FromString(base64.b64decode(p))
           for p in world.result("det.get_object_point_clouds")["protos"]]
    local = world.local_vision["det"].object_point_clouds("cam")
    assert got == [object_to_proto(o, local.camera) for o in local.objects]
    # This service keeps every detection (no minimum confidence): the two dogs first (the SSD's best scores), then
    # whatever else it guessed, in score order.
    assert [o.geometries.geometries[0].label for o in got[:2]] == ["dog", "dog"]
    assert all(o.geometries.reference_frame == "cam" for o in got)
    for obj in got[:2]:
        cloud = read_pcd(obj.point_cloud)
        assert len(cloud) > 1000 and cloud.xyz[:, 2].max() < 2.5  # metres, and no point of the wall 3 m away
        assert 1000 < obj.geometries.geometries[0].center.z < 2500  # millimetres
    assert world.error("clf.get_object_point_clouds")["status"] == "FAILED_PRECONDITION"
    assert "not a detector" in world.error("clf.get_object_point_clouds")["message"]


@pytest.mark.parametrize("service", ["det", "clf"])
def test_get_properties(world: World, service: str) -> None:
    got = vision_pb2.GetPropertiesResponse.FromString(base64.b64decode(world.result(f"{service}.get_properties")["proto"]))
    local = world.local_vision[service].properties()
    assert got.detections_supported == local.detections_supported == (service == "det")
    assert got.classifications_supported == local.classifications_supported == (service == "clf")
    assert got.object_point_clouds_supported == local.object_point_clouds_supported == (service == "det")
    assert got.HasField("default_camera") == bool(local.default_camera)
    assert got.default_camera == local.default_camera


@pytest.mark.parametrize("service", ["det", "clf"])
def test_do_command_get_config(world: World, service: str) -> None:
    got = world.result(f"{service}.get_config")["result"]
    assert as_json(got) == as_json(world.local_vision[service].do_command({"command": "get_config"}))
    assert got["mlmodel_location"] == "in-process"
    # Unset thresholds are absent, not null: the SDK would show a null as 0 ("at most 0 detections").
    assert "max_detections" not in got["thresholds"] and "iou_threshold" not in got["thresholds"]


def test_do_command_set_thresholds_and_errors(world: World) -> None:
    got = world.result("det.set_thresholds")["result"]
    # The same command on a fresh in-process service with det's config.
    local = VisionService.create(ResourceContext(name="det", dependencies=(), resources=world.resources,
                                                 parent=lambda: None),
                                 VisionConfig.parse({"mlmodel_name": "ssd", "camera_name": "cam"}))
    expected = local.do_command({"command": "set_thresholds", "default_minimum_confidence": 0.6,
                                 "allowed_labels": ["bird", "dog"]})
    assert as_json(got) == as_json(expected)
    assert got["thresholds"]["allowed_labels"] == ["bird", "dog"]
    unknown = world.error("det.unknown_command")
    assert unknown["status"] == "INVALID_ARGUMENT" and "self_destruct" in unknown["message"]
    wrong_kind = world.error("clf.get_detections")
    assert wrong_kind["status"] == "FAILED_PRECONDITION"


# --- model families (v2), zero-config, through the module process, its socket and the SDK -----------------------------

@pytest.mark.parametrize("key", sorted(FAMILIES))
def test_model_families_through_the_sdk(world: World, key: str) -> None:
    reference = ref.load(world.testdata)[FAMILIES[key]]
    for image_path in (PETS, FACE):
        got = detections(world.result(f"fam-{key}.get_detections.{image_path}")["protos"])
        data = (world.testdata / image_path).read_bytes()
        assert got == [detection_to_proto(d) for d in world.local_vision[f"fam-{key}"].detections(data, "image/jpeg")]
        expected = ref.reference_boxes(reference["images"][image_path.split("/")[1]])
        if key == "v5":  # no names in the file and none configured: class ids as text
            expected = [ref.Box(str(d["class_id"]), b.score, b.xyxy)
                        for d, b in zip(reference["images"][image_path.split("/")[1]]["detections"], expected)]
        ours = [ref.Box(d.class_name, d.confidence, (d.x_min, d.y_min, d.x_max, d.y_max)) for d in got]
        assert not ref.detection_problems(FAMILIES[key], ours, expected), (image_path, ours)
    config = world.result(f"fam-{key}.get_config")["result"]
    assert as_json(config) == as_json(world.local_vision[f"fam-{key}"].do_command({"command": "get_config"}))
    assert config["layout"]["layout"] == {"v5": "yolov5", "e2e": "end2end", "ssd2": "ssd"}.get(key, "yolov8")


def test_teachable_machine_through_the_sdk(world: World) -> None:
    got = classifications(world.result("fam-tm.get_classifications")["protos"])
    assert [(c.class_name, round(c.confidence, 3)) for c in got][:1] == [("1", 0.996)]  # Dogs; no label file given
