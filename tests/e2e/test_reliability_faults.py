"""Faults and hostile input against the real module process (devkit/standin/launcher.py) next to a fake parent
(devkit/standin/parent.py): every bad thing fails the one call it touches with a clear status, and the next call works.

Covered here: camera errors, time-outs, empty/corrupt/truncated/oversized frames; an mlmodel removed from under a
vision service and added back (with and without a parent); kill -9 and a restart on the same socket path; hostile
tensors (shapes claiming 2**64 elements, shape/data mismatch, zero and 2**64-1 dimensions, NaN/Inf); messages
above the size limit; broken model and label files at AddResource. Image decoding itself is fuzzed in
tests/unit/vision/test_imaging.py. Cancelled and expired calls giving their interpreter up: tests/unit/test_pool.py
and tests/e2e/test_reliability_field.py.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import struct
import zlib
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import PIL.Image
import pytest

from devkit.models import classifier_model, detector_model, dynamic_model, passthrough_model
from devkit.standin.launcher import MLMODEL, VISION, ModuleProcess, short_tempdir
from devkit.standin.parent import CameraFrame
from devkit.testdata import TESTDATA
from module.gen.common.v1 import common_pb2
from module.gen.service.mlmodel.v1 import mlmodel_pb2, mlmodel_pb2_grpc
from module.gen.service.vision.v1 import vision_pb2, vision_pb2_grpc
from module.mlmodel import flat_tensors
from tests.support.detector_world import (
    BOXES,
    DETECTOR,
    IMAGE_SIZE,
    OTHER_DETECTOR,
    World,
    detector_file,
    image,
)

pytestmark = pytest.mark.timeout(180)

LOG_LEVEL = "info"


# --- helpers ---------------------------------------------------------------------------------------------------------

def encoded(img: PIL.Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt)
    return out.getvalue()


def expected_boxes(spec: dict[str, Any], size: tuple[int, int] = IMAGE_SIZE) -> list[tuple[str, int, int, int, int]]:
    w, h = size
    return [(str(c), round(b[0] * w), round(b[1] * h), round(b[2] * w), round(b[3] * h))
            for b, c in zip(spec["boxes"], spec["classes"])]


def boxes(detections: Any) -> list[tuple[str, int, int, int, int]]:
    return [(d.class_name, d.x_min, d.y_min, d.x_max, d.y_max) for d in detections]


def rpc_error(call: Any, *args: Any, **kwargs: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call(*args, **kwargs)
    return info.value


def from_camera(module: ModuleProcess, camera: str = "cam", timeout: float | None = 10
                ) -> list[tuple[str, int, int, int, int]]:
    return boxes(module.vision.GetDetectionsFromCamera(
        vision_pb2.GetDetectionsFromCameraRequest(name="vis", camera_name=camera), timeout=timeout).detections)


def of_bytes(module: ModuleProcess, data: bytes, mime: str, name: str = "vis") -> list[tuple[str, int, int, int, int]]:
    return boxes(module.vision.GetDetections(vision_pb2.GetDetectionsRequest(name=name, image=data, mime_type=mime),
                                             timeout=10).detections)


def infer(module: ModuleProcess, name: str, inputs: dict[str, np.ndarray], timeout: float = 10) -> dict[str, np.ndarray]:
    reply = module.mlmodel.Infer(mlmodel_pb2.InferRequest(name=name, input_tensors=flat_tensors.encode_all(inputs)),
                                 timeout=timeout)
    return flat_tensors.decode_all(reply.output_tensors)


def status(module: ModuleProcess, name: str) -> dict[str, Any]:
    from module.resource.structs import struct_to_dict

    return struct_to_dict(module.mlmodel.GetStatus(common_pb2.GetStatusRequest(name=name), timeout=10).result)


def raw_tensor(shape: list[int], field: str, data: Any) -> mlmodel_pb2.FlatTensor:
    return mlmodel_pb2.FlatTensor(shape=shape, **{field: data})


# --- camera faults ---------------------------------------------------------------------------------------------------

CAMERA_ERRORS = [
    # (status the parent answers GetImages with, status the vision caller gets)
    (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAVAILABLE),
    (grpc.StatusCode.UNKNOWN, grpc.StatusCode.UNAVAILABLE),
    (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNAVAILABLE),
    (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE),  # viam-server's per-resource request limit
    (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.NOT_FOUND),
    (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.DEADLINE_EXCEEDED),
]


@pytest.mark.parametrize(("parent_code", "expected"), CAMERA_ERRORS, ids=[c[0].name for c in CAMERA_ERRORS])
def test_camera_error_fails_that_call_and_the_next_works(w: World, parent_code: grpc.StatusCode,
                                                         expected: grpc.StatusCode) -> None:
    w.parent.fault("GetImages", parent_code, details="camera fault injected", times=1)
    error = rpc_error(from_camera, w.module)
    assert error.code() == expected
    assert "'cam'" in error.details() and "camera fault injected" in error.details()
    assert from_camera(w.module) == expected_boxes(DETECTOR)


def test_camera_slower_than_the_callers_deadline(w: World) -> None:
    """The module passes the caller's remaining time on to the parent, so its own call ends with the caller's."""
    w.parent.fault("GetImages", delay=1.5, times=1)
    error = rpc_error(from_camera, w.module, timeout=0.4)
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert from_camera(w.module) == expected_boxes(DETECTOR)
    # The same for the other camera methods.
    w.parent.fault("GetImages", delay=1.5, times=1)
    error = rpc_error(w.module.vision.CaptureAllFromCamera, vision_pb2.CaptureAllFromCameraRequest(
        name="vis", camera_name="cam", return_image=True, return_detections=True), timeout=0.4)
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    reply = w.module.vision.CaptureAllFromCamera(vision_pb2.CaptureAllFromCameraRequest(
        name="vis", camera_name="cam", return_image=True, return_detections=True), timeout=10)
    assert boxes(reply.detections) == expected_boxes(DETECTOR) and reply.image.image == w.good_frame.data


def test_camera_call_without_a_deadline(w: World) -> None:
    """A client that sets no deadline (grpc reports ~9.2e18 s remaining) still gets its camera frame read, with the
    module's own time limit on the parent call."""
    assert from_camera(w.module, timeout=None) == expected_boxes(DETECTOR)
    reply = w.module.vision.CaptureAllFromCamera(vision_pb2.CaptureAllFromCameraRequest(
        name="vis", camera_name="cam", return_image=True, return_detections=True))
    assert boxes(reply.detections) == expected_boxes(DETECTOR)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels, with one tiny IDAT chunk: a decompression bomb as
    far as any decoder that trusts the header is concerned."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _jpeg_claiming(width: int, height: int) -> bytes:
    """A real small JPEG whose SOF0 header was rewritten to claim ``width`` x ``height``."""
    data = bytearray(encoded(image(), "JPEG"))
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def _bad_frames() -> list[tuple[str, CameraFrame, grpc.StatusCode]]:
    """Corrupt, cut-short or empty frames: UNAVAILABLE (a glitch; the next frame may be fine); a type this service
    does not decode: FAILED_PRECONDITION (the camera's configuration must change); over the pixel limit:
    RESOURCE_EXHAUSTED. Never INVALID_ARGUMENT: the caller's arguments were fine."""
    png = encoded(image(), "PNG")
    jpeg = encoded(image(), "JPEG")
    return [
        ("png-bomb-100000x100000", CameraFrame(_png_header_only(100_000, 100_000), "image/png"),
         grpc.StatusCode.RESOURCE_EXHAUSTED),
        ("png-8000x8000-over-the-limit", CameraFrame(_png_header_only(8000, 8000), "image/png"),
         grpc.StatusCode.RESOURCE_EXHAUSTED),
        ("jpeg-claiming-65500x65500", CameraFrame(_jpeg_claiming(65500, 65500), "image/jpeg"),
         grpc.StatusCode.RESOURCE_EXHAUSTED),
        ("empty", CameraFrame(b"", "image/jpeg"), grpc.StatusCode.UNAVAILABLE),
        ("garbage-jpeg", CameraFrame(b"\xff\xd8\xff\xe0 not really a jpeg" * 4, "image/jpeg"),
         grpc.StatusCode.UNAVAILABLE),
        ("truncated-jpeg", CameraFrame(jpeg[: len(jpeg) // 3], "image/jpeg"), grpc.StatusCode.UNAVAILABLE),
        ("truncated-png", CameraFrame(png[: len(png) // 2], "image/png"), grpc.StatusCode.UNAVAILABLE),
        ("zero-size-rgba", CameraFrame(b"RGBA" + struct.pack(">II", 0, 0), "image/vnd.viam.rgba"),
         grpc.StatusCode.UNAVAILABLE),
        ("short-rgba", CameraFrame(b"RGBA" + struct.pack(">II", 100, 100) + b"\0" * 10, "image/vnd.viam.rgba"),
         grpc.StatusCode.UNAVAILABLE),
        ("rgba-claiming-4-billion-pixels", CameraFrame(b"RGBA" + struct.pack(">II", 65535, 65535), "image/vnd.viam.rgba"),
         grpc.StatusCode.RESOURCE_EXHAUSTED),
        ("depth", CameraFrame(b"DEPTHMAP" + b"\0" * 64, "image/vnd.viam.dep"), grpc.StatusCode.FAILED_PRECONDITION),
        ("gif", CameraFrame(encoded(image(), "GIF"), "image/gif"), grpc.StatusCode.FAILED_PRECONDITION),
    ]


@pytest.mark.parametrize(("bad", "expected"), [(f, c) for _, f, c in _bad_frames()], ids=[n for n, _, _ in _bad_frames()])
def test_bad_camera_frame_fails_that_call_and_the_next_works(w: World, bad: CameraFrame,
                                                             expected: grpc.StatusCode) -> None:
    w.parent.cameras["cam"] = bad
    error = rpc_error(from_camera, w.module)
    assert error.code() == expected, error.details()
    assert error.details().startswith("camera 'cam' "), error.details()  # names the camera it blames
    assert "object at 0x" not in error.details(), error.details()
    w.parent.cameras["cam"] = w.good_frame
    assert from_camera(w.module) == expected_boxes(DETECTOR)


# --- an mlmodel removed from under its vision service ----------------------------------------------------------------

def _removed_then_added_back(module: ModuleProcess, model_dir: Path) -> None:
    data = encoded(image(), "PNG")
    assert of_bytes(module, data, "image/png", "vis2") == expected_boxes(DETECTOR)
    module.remove("rdk:service:mlmodel/det2")
    # The first call waits up to 3 s for viam-server to add it back (RemoveResource then AddResource), then all are
    # UNAVAILABLE (retryable: missing for now, not wrongly configured).
    for call in (lambda: of_bytes(module, data, "image/png", "vis2"),
                 lambda: module.vision.GetClassifications(vision_pb2.GetClassificationsRequest(
                     name="vis2", image=data, mime_type="image/png", n=1), timeout=10),
                 lambda: module.vision.GetProperties(vision_pb2.GetPropertiesRequest(name="vis2"), timeout=10)):
        for _ in range(2):  # stays so, call after call
            error = rpc_error(call)
            assert error.code() == grpc.StatusCode.UNAVAILABLE, error.details()
            assert "'det2' is not available" in error.details(), error.details()
    # Added back (as another model): the vision service uses it at once, with a plan made for the new model.
    module.add("det2", MLMODEL, {"model_path": detector_file(model_dir / "other.tflite", OTHER_DETECTOR)})
    assert of_bytes(module, data, "image/png", "vis2") == expected_boxes(OTHER_DETECTOR)
    module.add("det2", MLMODEL, {"model_path": detector_file(model_dir / "det.tflite", DETECTOR)})
    assert of_bytes(module, data, "image/png", "vis2") == expected_boxes(DETECTOR)


def test_mlmodel_removed_and_added_back_with_a_parent(w: World) -> None:
    """With a parent, a missing local mlmodel is looked up through the parent, which answers NOT_FOUND."""
    model_dir = Path(w.dir) / "removed"
    model_dir.mkdir(exist_ok=True)
    w.module.add("det2", MLMODEL, {"model_path": detector_file(model_dir / "det.tflite")})
    w.module.add("vis2", VISION, {"mlmodel_name": "det2"}, ("rdk:service:mlmodel/det2",))
    try:
        _removed_then_added_back(w.module, model_dir)
        assert w.parent.calls("Metadata"), "the module did not look for the mlmodel through the parent"
    finally:
        w.module.remove("rdk:service:vision/vis2")
        w.module.remove("rdk:service:mlmodel/det2")


def test_mlmodel_removed_and_added_back_without_a_parent(tmp_path: Path) -> None:
    module = ModuleProcess(env={"VIAM_NO_MODULE_PARENT": "true"}, log_level="info")
    try:
        module.wait_for_socket()
        module.ready("/nonexistent/parent.sock")
        module.add("det2", MLMODEL, {"model_path": detector_file(tmp_path / "det.tflite")})
        module.add("vis2", VISION, {"mlmodel_name": "det2"}, ("rdk:service:mlmodel/det2",))
        _removed_then_added_back(module, tmp_path)
    finally:
        module.close()


# --- kill -9, then a restart on the same socket path -----------------------------------------------------------------

def test_kill_9_then_restart_on_the_same_socket_path(tmp_path: Path) -> None:
    directory = short_tempdir()
    try:
        first = ModuleProcess(socket_dir=directory, env={"VIAM_NO_MODULE_PARENT": "true"}, log_level="info")
        first.wait_for_socket()
        first.ready("")
        first.add("det", MLMODEL, {"model_path": detector_file(tmp_path / "det.tflite")})
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(10)
        first.close()
        assert os.path.exists(first.socket), "a killed process cannot remove its socket: the restart must cope"
        # viam-server restarts the module on the same path and re-adds its resources.
        second = ModuleProcess(socket_dir=directory, env={"VIAM_NO_MODULE_PARENT": "true"}, log_level="info")
        try:
            second.wait_for_socket()
            second.ready("")
            second.add("det", MLMODEL, {"model_path": detector_file(tmp_path / "det.tflite")})
            out = infer(second, "det", {"image": np.zeros((1, 32, 32, 3), np.uint8)})
            assert float(out["score"].reshape(-1)[0]) == pytest.approx(0.75)
        finally:
            second.close()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


# --- hostile tensors over the socket ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tensor_models(world: World) -> World:
    model_dir = Path(world.dir) / "tensor-models"
    model_dir.mkdir(exist_ok=True)
    (model_dir / "dyn.tflite").write_bytes(dynamic_model())
    (model_dir / "pass.tflite").write_bytes(passthrough_model("float32", (1, 4)))
    world.module.add("dyn", MLMODEL, {"model_path": str(model_dir / "dyn.tflite"), "pool_size": 1})
    world.module.add("pass", MLMODEL, {"model_path": str(model_dir / "pass.tflite"), "pool_size": 1})
    return world


def _float_data(n: int) -> mlmodel_pb2.FlatTensorDataFloat:
    return mlmodel_pb2.FlatTensorDataFloat(data=[0.5] * n)


HOSTILE_TENSORS = [
    ("billions-of-elements", "dyn", [1, 100_000, 100_000, 3], "float_tensor", _float_data(3)),
    ("2**64-1-elements", "dyn", [2**64 - 1], "float_tensor", _float_data(1)),
    ("product-overflows-int64", "dyn", [2**32, 2**32, 2**32], "float_tensor", _float_data(0)),
    ("shape-says-more-than-data", "dyn", [1, 2, 2, 3], "float_tensor", _float_data(11)),
    ("shape-says-less-than-data", "dyn", [1, 2, 2, 3], "float_tensor", _float_data(13)),
    ("zero-dims", "dyn", [1, 0, 0, 3], "float_tensor", _float_data(0)),
    ("zero-dim-with-huge-other", "dyn", [1, 0, 2**64 - 1, 3], "float_tensor", _float_data(0)),
    ("negative-dim-as-uint64", "dyn", [1, 2**64 - 1, 1, 3], "float_tensor", _float_data(3)),
    ("too-many-dims", "dyn", [1] * 100, "float_tensor", _float_data(1)),
    ("wrong-rank", "dyn", [2, 3], "float_tensor", _float_data(6)),
    ("wrong-dtype", "dyn", [1, 2, 2, 3], "uint8_tensor", mlmodel_pb2.FlatTensorDataUInt8(data=bytes(12))),
    ("no-data-field", "dyn", [1, 2, 2, 3], None, None),
    ("fixed-dim-mismatch", "pass", [1, 5], "float_tensor", _float_data(5)),
    ("uint8-bytes-mismatch", "pass", [1, 4], "uint8_tensor", mlmodel_pb2.FlatTensorDataUInt8(data=bytes(3))),
]


@pytest.mark.parametrize(("model", "shape", "field", "data"), [h[1:] for h in HOSTILE_TENSORS],
                         ids=[h[0] for h in HOSTILE_TENSORS])
def test_hostile_tensor_is_invalid_argument_and_the_server_keeps_serving(tensor_models: World, model: str,
                                                                          shape: list[int], field: str | None,
                                                                          data: Any) -> None:
    module = tensor_models.module
    tensor = mlmodel_pb2.FlatTensor(shape=shape) if field is None else raw_tensor(shape, field, data)
    request = mlmodel_pb2.InferRequest(name=model)
    request.input_tensors.tensors["input"].CopyFrom(tensor)
    error = rpc_error(module.mlmodel.Infer, request, timeout=10)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert "input" in error.details()
    out = infer(module, "dyn", {"input": np.ones((1, 3, 5, 3), np.float32)})
    np.testing.assert_allclose(out["mean"], np.ones((1, 3)))


def test_nan_and_inf_inputs_pass_through_and_the_server_keeps_serving(tensor_models: World) -> None:
    """NaN and Inf are valid float32 values: the mlmodel runs the model on them, like Viam's tflite_cpu (rejecting
    them would break models that use them); what the model makes of them is returned unchanged."""
    module = tensor_models.module
    values = np.array([[np.nan, np.inf, -np.inf, 1.5]], np.float32)
    out = infer(module, "pass", {"input": values})
    np.testing.assert_array_equal(out["output"], values)
    out = infer(module, "dyn", {"input": np.full((1, 2, 2, 3), np.nan, np.float32)})
    assert np.isnan(out["mean"]).all()
    out = infer(module, "dyn", {"input": np.ones((1, 2, 2, 3), np.float32)})
    np.testing.assert_allclose(out["mean"], np.ones((1, 3)))


def test_detector_producing_nan_and_inf_gives_only_finite_detections(w: World, tmp_path: Path) -> None:
    """A model whose boxes or scores are NaN/Inf: the vision service drops those, answers with the rest."""
    path = tmp_path / "nan.tflite"
    path.write_bytes(detector_model([(np.nan, 0.1, 0.5, 0.5), (0.1, 0.1, np.inf, 0.5), (0.25, 0.25, 0.75, 0.5),
                                     (0.2, 0.2, 0.4, 0.4)], [0, 1, 1, 0], [0.9, 0.8, 0.75, np.nan]))
    w.module.add("nan", MLMODEL, {"model_path": str(path)})
    w.module.add("nan-vis", VISION, {"mlmodel_name": "nan"}, ("rdk:service:mlmodel/nan",))
    try:
        found = of_bytes(w.module, encoded(image(), "PNG"), "image/png", "nan-vis")
        assert found == expected_boxes(DETECTOR)
    finally:
        w.module.remove("rdk:service:vision/nan-vis")
        w.module.remove("rdk:service:mlmodel/nan")


# --- messages above the size limit -----------------------------------------------------------------------------------

def test_message_above_the_size_limit_is_resource_exhausted_and_the_server_keeps_serving(w: World) -> None:
    from module.server import MAX_MESSAGE_BYTES

    # A client that sends anything (grpcio's own send limit would stop the call before it leaves).
    channel = grpc.insecure_channel(f"unix:{w.module.socket}", options=[("grpc.max_send_message_length", -1),
                                                                       ("grpc.max_receive_message_length", -1)])
    try:
        big = np.zeros(MAX_MESSAGE_BYTES // 4 + 1024, np.float32)
        request = mlmodel_pb2.InferRequest(name="det", input_tensors=flat_tensors.encode_all({"image": big}))
        assert request.ByteSize() > MAX_MESSAGE_BYTES
        error = rpc_error(mlmodel_pb2_grpc.MLModelServiceStub(channel).Infer, request, timeout=60)
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error.details()
        del request, big
        image_request = vision_pb2.GetDetectionsRequest(name="vis", image=bytes(MAX_MESSAGE_BYTES + 1),
                                                        mime_type="image/jpeg")
        error = rpc_error(vision_pb2_grpc.VisionServiceStub(channel).GetDetections, image_request, timeout=60)
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error.details()
        del image_request
        # The same connection and a new one both still work.
        assert of_bytes(w.module, encoded(image(), "PNG"), "image/png") == expected_boxes(DETECTOR)
        reply = vision_pb2_grpc.VisionServiceStub(channel).GetDetections(vision_pb2.GetDetectionsRequest(
            name="vis", image=encoded(image(), "PNG"), mime_type="image/png"), timeout=10)
        assert boxes(reply.detections) == expected_boxes(DETECTOR)
    finally:
        channel.close()


# --- broken model and label files at AddResource ---------------------------------------------------------------------

def _broken_models(directory: Path) -> list[tuple[str, str]]:
    good = detector_model(BOXES, [1], [0.75], metadata=True, embedded_labels=["zero", "one"])
    files = {
        "empty.tflite": b"",
        "png.tflite": encoded(image(), "PNG"),
        "text.tflite": b"this is not a model\n" * 10,
        "tfl3-header-only.tflite": good[:8],
        "truncated-16.tflite": good[:16],
        "truncated-10pct.tflite": good[: len(good) // 10],
        "truncated-half.tflite": good[: len(good) // 2],
        "truncated-90pct.tflite": good[: len(good) * 9 // 10],
        "random-after-header.tflite": good[:8] + np.random.default_rng(5).integers(0, 256, 4000, np.uint8).tobytes(),
    }
    cases = []
    for name, data in files.items():
        (directory / name).write_bytes(data)
        cases.append((name, str(directory / name)))
    (directory / "dir.tflite").mkdir(exist_ok=True)
    cases.append(("a-directory", str(directory / "dir.tflite")))
    cases.append(("missing", str(directory / "missing.tflite")))
    for invalid in sorted((TESTDATA / "models" / "invalid").glob("*.tflite")):
        cases.append((f"testdata-invalid/{invalid.name}", str(invalid)))
    return cases


def test_broken_model_files_fail_add_resource_clearly_and_the_module_keeps_serving(w: World, tmp_path: Path) -> None:
    outcomes: dict[str, str] = {}
    for label, path in _broken_models(tmp_path):
        try:
            w.module.add("broken", MLMODEL, {"model_path": path})
        except grpc.RpcError as exc:
            assert exc.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION), \
                f"{label}: {exc.code()} {exc.details()}"
            assert "model_path" in exc.details() and path in exc.details(), f"{label}: {exc.details()}"
            outcomes[label] = exc.code().name
        else:
            # Only a file TFLite can really run may load (a truncation that keeps the whole flatbuffer).
            out = infer(w.module, "broken", {"image": np.zeros((1, 32, 32, 3), np.uint8)})
            outcomes[label] = f"loaded ({sorted(out)})"
            w.module.remove("rdk:service:mlmodel/broken")
        assert w.module.proc.poll() is None, f"{label} killed the module:\n{w.module.log()[-3000:]}"
        assert from_camera(w.module) == expected_boxes(DETECTOR), label
    print("\n" + "\n".join(f"{k}: {v}" for k, v in outcomes.items()))
    assert sum(v.startswith("loaded") for v in outcomes.values()) <= 1, outcomes
    if (TESTDATA / "models" / "invalid").exists():
        assert outcomes["testdata-invalid/model_invoking_error.tflite"] == "INVALID_ARGUMENT"


LABEL_BYTES = b"\xef\xbb\xbfzero\r\n\r\ntwo \xff\xfe\r\n  three  \r\n\r\n\r\n"
# Line i is class i: BOM dropped, CRLF handled, the blank line keeps its place, bad bytes become U+FFFD.
LABELS = ["zero", "", "two \ufffd\ufffd", "three"]


def test_label_file_with_bom_crlf_blank_lines_and_bad_utf8(w: World, tmp_path: Path) -> None:
    (tmp_path / "labels.txt").write_bytes(LABEL_BYTES)
    (tmp_path / "cls.tflite").write_bytes(classifier_model([0.1, 0.2, 0.3, 0.4]))
    w.module.add("cls", MLMODEL, {"model_path": str(tmp_path / "cls.tflite"), "label_path": str(tmp_path / "labels.txt")})
    # One vision service takes the labels from the mlmodel's metadata, the other from its own label_path.
    w.module.add("cls-vis", VISION, {"mlmodel_name": "cls"}, ("rdk:service:mlmodel/cls",))
    w.module.add("cls-vis-own", VISION, {"mlmodel_name": "cls", "label_path": str(tmp_path / "labels.txt")},
                 ("rdk:service:mlmodel/cls",))
    try:
        for name in ("cls-vis", "cls-vis-own"):
            reply = w.module.vision.GetClassifications(vision_pb2.GetClassificationsRequest(
                name=name, image=encoded(image(), "PNG"), mime_type="image/png", n=4), timeout=10)
            got = [(c.class_name, round(c.confidence, 2)) for c in reply.classifications]
            # A blank label falls back to the class index.
            assert got == [("three", 0.4), ("two \ufffd\ufffd", 0.3), ("1", 0.2), ("zero", 0.1)], name
    finally:
        for full in ("rdk:service:vision/cls-vis", "rdk:service:vision/cls-vis-own", "rdk:service:mlmodel/cls"):
            w.module.remove(full)


@pytest.mark.parametrize("content", [b"", b"\r\n\r\n  \n", b"\xef\xbb\xbf"], ids=["empty", "only-blank-lines", "only-bom"])
def test_label_file_without_labels_is_invalid_argument(w: World, tmp_path: Path, content: bytes) -> None:
    (tmp_path / "labels.txt").write_bytes(content)
    (tmp_path / "cls.tflite").write_bytes(classifier_model([0.1, 0.9]))
    error = rpc_error(w.module.add, "cls", MLMODEL, {"model_path": str(tmp_path / "cls.tflite"),
                                                     "label_path": str(tmp_path / "labels.txt")})
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "label" in error.details()
    error = rpc_error(w.module.add, "cls-vis", VISION, {"mlmodel_name": "det", "label_path": str(tmp_path / "labels.txt")})
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "label" in error.details()
    assert from_camera(w.module) == expected_boxes(DETECTOR)
