"""The faults a robot meets in the field, from the outside (issue 14): the real module process (devkit/standin/launcher.py)
next to a fake viam-server (devkit/standin/parent.py). Every test waits on a signal (a log line, a status counter, a
call's own answer), never on a sleep, and asserts no duration.

* a mistaken file path (a symlink to /dev/zero, a FIFO, a directory, an oversize file) fails AddResource at once;
* a call that arrives while viam-server replaces its mlmodel (RemoveResource, then AddResource) waits for the
  replacement instead of failing; one whose mlmodel does not come back gets a retryable UNAVAILABLE;
* a camera that hangs: DEADLINE_EXCEEDED naming the camera, before the caller's own deadline;
* a camera that sends undecodable bytes: a status that blames the camera, no Python object reprs;
* viam-server restarts on the same socket and calls Ready again: the first camera call after Ready works;
* an unexpected error: INTERNAL with an error id, and the traceback under that id in viam-server's log;
* cancelled and expired calls never run the interpreter (the end-to-end half of tests/unit/test_pool.py).
"""

from __future__ import annotations

import io
import os
import re
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import PIL.Image
import pytest

from devkit.models import detector_model, slow_model
from devkit.standin.launcher import MLMODEL, REPO, VISION, ModuleProcess, short_tempdir
from devkit.standin.parent import CameraFrame, FakeParent, frame
from module.gen.common.v1 import common_pb2
from module.gen.service.mlmodel.v1 import mlmodel_pb2
from module.gen.service.vision.v1 import vision_pb2
from module.mlmodel import flat_tensors
from module.resource.structs import struct_to_dict
from tests.support.detector_world import (
    DETECTOR,
    IMAGE_SIZE,
    OTHER_DETECTOR,
    World,
    detector_file,
    png,
    start,
)

pytestmark = pytest.mark.timeout(180)

LOG_LEVEL = "debug"
REPR = re.compile(r"object at 0x|<[\w.]+ object|at 0x[0-9a-f]{6,}")
SIGNAL_S = 30.0  # the longest a signal that follows at once may take to show on a starved machine


def expected(spec: dict[str, Any]) -> list[tuple[str, int, int, int, int]]:
    w, h = IMAGE_SIZE
    return [(str(c), round(b[0] * w), round(b[1] * h), round(b[2] * w), round(b[3] * h))
            for b, c in zip(spec["boxes"], spec["classes"])]


def boxes(detections: Any) -> list[tuple[str, int, int, int, int]]:
    return [(d.class_name, d.x_min, d.y_min, d.x_max, d.y_max) for d in detections]


def of_bytes(module: ModuleProcess, name: str = "vis", timeout: float = 30) -> list[tuple[str, int, int, int, int]]:
    return boxes(module.vision.GetDetections(vision_pb2.GetDetectionsRequest(name=name, image=png(),
                                                                            mime_type="image/png"),
                                             timeout=timeout).detections)


def from_camera(module: ModuleProcess, timeout: float = 10) -> list[tuple[str, int, int, int, int]]:
    return boxes(module.vision.GetDetectionsFromCamera(
        vision_pb2.GetDetectionsFromCameraRequest(name="vis", camera_name="cam"), timeout=timeout).detections)


def rpc_error(call: Any, *args: Any, **kwargs: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call(*args, **kwargs)
    return info.value


def wait_for_log(parent: FakeParent, text: str) -> common_pb2.LogEntry:
    """The first log entry the module sent the parent that contains ``text`` (waits for it to arrive)."""
    found: list[common_pb2.LogEntry] = []

    def seen() -> bool:
        found[:] = [e for e in parent.logs() if text in e.message]
        return bool(found)

    assert parent.wait_for(seen, SIGNAL_S), f"no log entry with {text!r}: {[e.message for e in parent.logs()][-10:]}"
    return found[0]


# --- 1. a file path that points at something no one should read --------------------------------------------------------

def _hostile_files(directory: Path) -> list[tuple[str, str]]:
    (directory / "zero.tflite").symlink_to("/dev/zero")
    os.mkfifo(directory / "fifo.tflite")
    (directory / "dir.tflite").mkdir()
    with open(directory / "huge.tflite", "wb") as handle:  # sparse: no disk used
        handle.truncate(3 * 1024**3)
    return [("symlink-to-dev-zero", str(directory / "zero.tflite")), ("fifo", str(directory / "fifo.tflite")),
            ("directory", str(directory / "dir.tflite")), ("3-GiB-sparse", str(directory / "huge.tflite"))]


def test_hostile_model_and_label_paths_fail_add_resource_at_once(w: World, tmp_path: Path) -> None:
    """Before: a symlink to /dev/zero was read without end (6 GB of memory in 19 s), a FIFO blocked AddResource."""
    good = detector_file(tmp_path / "good.tflite")
    for label, path in _hostile_files(tmp_path):
        error = rpc_error(w.module.add, "bad", MLMODEL, {"model_path": path})
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (label, error.details())
        assert "'model_path'" in error.details() and path in error.details(), error.details()
        if label != "3-GiB-sparse":
            label_path = path.replace(".tflite", ".txt")
            os.rename(path, label_path)
            for name, kind, attributes in (("bad", MLMODEL, {"model_path": good, "label_path": label_path}),
                                           ("bad-vis", VISION, {"mlmodel_name": "det", "label_path": label_path})):
                error = rpc_error(w.module.add, name, kind, attributes)
                assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (label, error.details())
                assert "'label_path'" in error.details() and label_path in error.details(), error.details()
        assert of_bytes(w.module) == expected(DETECTOR), label  # still serving
    assert "'max_model_size_mb'" in rpc_error(w.module.add, "bad", MLMODEL,
                                              {"model_path": str(tmp_path / "huge.tflite")}).details()


def test_the_model_size_limit_is_an_attribute(w: World, tmp_path: Path) -> None:
    path = tmp_path / "padded.tflite"
    path.write_bytes(detector_model(DETECTOR["boxes"], DETECTOR["classes"], DETECTOR["scores"]) + bytes(2 * 1024**2))
    error = rpc_error(w.module.add, "padded", MLMODEL, {"model_path": str(path), "max_model_size_mb": 1})
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "'max_model_size_mb'" in error.details()
    w.module.add("padded", MLMODEL, {"model_path": str(path), "max_model_size_mb": 3})
    w.module.remove("rdk:service:mlmodel/padded")


# --- 2. a call in the gap of a reconfiguration (RemoveResource, then AddResource) -------------------------------------

def test_a_call_in_the_remove_add_gap_waits_for_the_replacement(w: World, tmp_path: Path) -> None:
    """Before: FAILED_PRECONDITION "mlmodel 'det2' is not available", which tells clients not to retry."""
    w.module.add("det2", MLMODEL, {"model_path": detector_file(tmp_path / "det.tflite")})
    w.module.add("vis2", VISION, {"mlmodel_name": "det2"}, ("rdk:service:mlmodel/det2",))
    try:
        assert of_bytes(w.module, "vis2") == expected(DETECTOR)
        w.module.remove("rdk:service:mlmodel/det2")
        outcome: dict[str, Any] = {}

        def call() -> None:
            try:
                outcome["boxes"] = of_bytes(w.module, "vis2")
            except grpc.RpcError as exc:
                outcome["error"] = (exc.code(), exc.details())

        caller = threading.Thread(target=call)
        caller.start()
        wait_for_log(w.parent, "waiting for mlmodel 'det2'")  # the call arrived in the gap and waits
        w.module.add("det2", MLMODEL, {"model_path": detector_file(tmp_path / "other.tflite", OTHER_DETECTOR)})
        caller.join(SIGNAL_S)
        assert outcome == {"boxes": expected(OTHER_DETECTOR)}  # answered by the replacement
    finally:
        w.module.remove("rdk:service:vision/vis2")
        w.module.remove("rdk:service:mlmodel/det2")


def test_an_mlmodel_that_does_not_come_back_is_unavailable_and_says_so(w: World, tmp_path: Path) -> None:
    w.module.add("det3", MLMODEL, {"model_path": detector_file(tmp_path / "det.tflite")})
    w.module.add("vis3", VISION, {"mlmodel_name": "det3"}, ("rdk:service:mlmodel/det3",))
    try:
        w.module.remove("rdk:service:mlmodel/det3")
        for _ in range(2):  # the first waits its bounded time; the next knows the replacement is late
            error = rpc_error(of_bytes, w.module, "vis3")
            assert error.code() == grpc.StatusCode.UNAVAILABLE, error.details()
            assert "'det3'" in error.details() and "not available" in error.details(), error.details()
    finally:
        w.module.remove("rdk:service:vision/vis3")


# --- 3, 4. a camera that hangs, a camera that sends garbage -----------------------------------------------------------

def test_a_hanging_camera_is_deadline_exceeded_naming_the_camera(w: World) -> None:
    """Before: the call ended at the client's deadline with grpc's bare "Deadline Exceeded"."""
    w.parent.fault("GetImages", delay=8.0, times=1)
    error = rpc_error(from_camera, w.module, timeout=3)
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert error.details() == "camera 'cam' did not answer within 2.7 s"
    assert from_camera(w.module) == expected(DETECTOR)


BAD_FRAMES = [
    ("garbage", CameraFrame(b"\xff\xd8\xff\xe0 not really a jpeg" * 4, "image/jpeg"), grpc.StatusCode.UNAVAILABLE),
    ("zeros", CameraFrame(bytes(4096), "image/jpeg"), grpc.StatusCode.UNAVAILABLE),
    ("truncated-png", CameraFrame(png()[:200], "image/png"), grpc.StatusCode.UNAVAILABLE),
    ("empty", CameraFrame(b"", "image/jpeg"), grpc.StatusCode.UNAVAILABLE),
    ("depth", CameraFrame(b"DEPTHMAP" + bytes(64), "image/vnd.viam.dep"), grpc.StatusCode.FAILED_PRECONDITION),
]


@pytest.mark.parametrize(("bad", "code"), [b[1:] for b in BAD_FRAMES], ids=[b[0] for b in BAD_FRAMES])
def test_undecodable_camera_bytes_blame_the_camera(w: World, bad: CameraFrame, code: grpc.StatusCode) -> None:
    """Before: INVALID_ARGUMENT "... cannot identify image file <_io.BytesIO object at 0x7f...>": the caller's
    arguments were fine."""
    w.parent.cameras["cam"] = bad
    for call in (lambda: from_camera(w.module),
                 lambda: w.module.vision.CaptureAllFromCamera(vision_pb2.CaptureAllFromCameraRequest(
                     name="vis", camera_name="cam", return_detections=True), timeout=10)):
        error = rpc_error(call)
        assert error.code() == code, error.details()
        assert error.details().startswith("camera 'cam' "), error.details()
        assert not REPR.search(error.details()), error.details()
    w.parent.cameras["cam"] = w.good_frame
    assert from_camera(w.module) == expected(DETECTOR)


# --- 5. viam-server restarts ------------------------------------------------------------------------------------------

def test_after_the_parent_restarts_the_first_camera_call_after_ready_works(tmp_path: Path) -> None:
    """Before: camera calls kept failing UNAVAILABLE for 4-6 s after Ready (grpc's reconnect backoff)."""
    directory = short_tempdir()
    parent, module = start(directory, log_level="debug")
    try:
        parent.cameras["cam"] = frame(PIL.Image.open(io.BytesIO(png())), "image/png")
        module.add("det", MLMODEL, {"model_path": detector_file(tmp_path / "det.tflite")})
        module.add("vis", VISION, {"mlmodel_name": "det", "camera_name": "cam"}, ("rdk:service:mlmodel/det",))
        assert from_camera(module) == expected(DETECTOR)
        parent.stop()
        for _ in range(3):  # calls while viam-server is down fail, and grpc's backoff grows
            assert rpc_error(from_camera, module).code() == grpc.StatusCode.UNAVAILABLE
        parent.start()
        module.ready(parent.address)  # viam-server is back and calls Ready again
        assert from_camera(module, timeout=2) == expected(DETECTOR)  # the very first call
    finally:
        module.close()
        parent.close()
        shutil.rmtree(directory, ignore_errors=True)


# --- 6. an unexpected error -------------------------------------------------------------------------------------------

def test_an_unexpected_error_reaches_the_parents_log_with_its_traceback_and_id(tmp_path: Path) -> None:
    """A bug planted from outside (sitecustomize makes GetProperties raise): the caller gets INTERNAL with an error
    id; viam-server's log gets the traceback under the same id, from the logger rdk:service:vision/vis; with the
    parent gone, the module's own output does. Before: a bare INTERNAL, and the traceback was lost."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import module.vision.service as service\n\n\n"
        "def broken(self):\n"
        "    raise RuntimeError('planted bug')\n\n\n"
        "service.VisionService.properties = broken\n")
    directory = short_tempdir()
    parent, module = start(directory, log_level="debug", env={"PYTHONPATH": f"{site}{os.pathsep}{REPO}"})
    try:
        module.add("det", MLMODEL, {"model_path": detector_file(tmp_path / "det.tflite")})
        module.add("vis", VISION, {"mlmodel_name": "det"}, ("rdk:service:mlmodel/det",))
        properties = vision_pb2.GetPropertiesRequest(name="vis")
        error = rpc_error(module.vision.GetProperties, properties, timeout=10)
        assert error.code() == grpc.StatusCode.INTERNAL
        error_id = re.search(r"error id ([0-9a-f]{8})", error.details())
        assert error_id and "planted bug" not in error.details(), error.details()
        entry = wait_for_log(parent, f"error id {error_id.group(1)}")
        assert entry.logger_name == "rdk:service:vision/vis" and entry.level == "error"
        assert "RuntimeError: planted bug" in entry.stack and "Traceback" in entry.stack
        assert "RuntimeError: planted bug" in entry.message  # viam-server shows the message, not the stack
        parent.stop()  # viam-server gone: the traceback goes to the module's stderr, which viam-server captures
        error_id = re.search(r"error id ([0-9a-f]{8})", rpc_error(module.vision.GetProperties, properties,
                                                                  timeout=10).details())
        assert error_id
        assert parent.wait_for(lambda: f"error id {error_id.group(1)}" in module.log(), SIGNAL_S), module.log()[-2000:]
        assert "RuntimeError: planted bug" in module.log().split(f"error id {error_id.group(1)}", 1)[1]
    finally:
        module.close()
        parent.close()
        shutil.rmtree(directory, ignore_errors=True)


# --- 8. cancelled and expired calls (end to end) ----------------------------------------------------------------------

HOLD_CPU_S = 3.0  # the holder's invoke: its CPU time alone outlasts the 1 s deadlines below, however slow the host


def _holder_model() -> bytes:
    """A float32 [1, 512, 512] model whose one invoke takes about HOLD_CPU_S of CPU (calibrated here, on this host)."""
    from ai_edge_litert.interpreter import Interpreter

    probe = Interpreter(model_content=slow_model(512, 24), num_threads=1)
    probe.allocate_tensors()
    probe.set_tensor(probe.get_input_details()[0]["index"], np.full((1, 512, 512), 0.001, np.float32))
    probe.invoke()  # warm
    started = os.times()
    probe.invoke()
    used = os.times()
    cpu = (used.user - started.user) + (used.system - started.system) or 0.01
    return slow_model(512, max(24, int(24 * HOLD_CPU_S / cpu)))


def _status(module: ModuleProcess, name: str) -> dict[str, Any]:
    return struct_to_dict(module.mlmodel.GetStatus(common_pb2.GetStatusRequest(name=name), timeout=10).result)


def _wait_status(module: ModuleProcess, name: str, predicate: Any) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def check() -> bool:
        seen.update(_status(module, name))
        return bool(predicate(seen))

    deadline = time.monotonic() + SIGNAL_S
    while not check():  # polls the module's counters: the signal, not a duration
        assert time.monotonic() < deadline, seen
        time.sleep(0.02)
    return seen


def test_cancelled_and_expired_calls_never_run_the_interpreter(tmp_path: Path) -> None:
    """pool_size 1: a holder runs a ~3 s invoke; 8 calls with a 1 s deadline and 4 the client cancels queue behind
    it. Each step waits for the module's own pool counters (GetStatus: pool_busy, pool_queued, calls_gave_up), not
    for time. None of the 12 may run the model (the old flaky test allowed 2); the holder and the next call do."""
    path = tmp_path / "slow.tflite"
    path.write_bytes(_holder_model())
    module = ModuleProcess(env={"VIAM_NO_MODULE_PARENT": "true"}, log_level="info")
    try:
        module.wait_for_socket()
        module.ready("")
        module.add("slow", MLMODEL, {"model_path": str(path), "pool_size": 1})
        x = {"input": np.full((1, 512, 512), 0.001, np.float32)}
        request = mlmodel_pb2.InferRequest(name="slow", input_tensors=flat_tensors.encode_all(x))
        before = _status(module, "slow")["infer_count"]

        holder = module.mlmodel.Infer.future(request, timeout=120)
        _wait_status(module, "slow", lambda s: s["pool_busy"] == 1)
        expiring = [module.mlmodel.Infer.future(request, timeout=1.0) for _ in range(8)]
        cancelled = [module.mlmodel.Infer.future(request, timeout=120) for _ in range(4)]
        _wait_status(module, "slow", lambda s: s["pool_queued"] + s["calls_gave_up"] == 12)
        for future in cancelled:
            future.cancel()
        status = _wait_status(module, "slow", lambda s: s["calls_gave_up"] == 12)
        holder_was_running = not holder.done()
        assert [f.exception().code() for f in expiring] == [grpc.StatusCode.DEADLINE_EXCEEDED] * 8
        assert all(f.cancelled() for f in cancelled)
        assert np.isfinite(flat_tensors.decode_all(holder.result().output_tensors)["mean"]).all()
        module.mlmodel.Infer(request, timeout=120)  # the next call runs
        after = _status(module, "slow")
        print(f"\n12 abandoned calls: {after['infer_count'] - before - 2} ran the interpreter; gave up: "
              f"{after['calls_gave_up']}; holder still running when the last gave up: {holder_was_running}")
        assert holder_was_running, f"the holder finished before the 12 gave up: {status}"
        assert after["infer_count"] - before == 2  # the holder and the next call; 0 of the 12
        assert (after["pool_busy"], after["pool_queued"], after["calls_gave_up"]) == (0, 0, 12)
    finally:
        module.close()
