"""End to end, the way viam-server runs the module: ./run.sh <socket> --log-level=debug with viam-server's
environment, a (fake) parent socket next to the module's, Ready with 3 s deadlines, the reflection lookup,
ValidateConfig / Add / Reconfigure / Remove, camera frames through the parent, and SIGTERM.

The first test to start ./run.sh may install .venv (a minute or two); later starts only check its stamp.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from devkit.standin.launcher import MLMODEL, VISION, ModuleProcess, free_tcp_port, short_tempdir
from devkit.standin.parent import FakeParent, frame
from devkit.testdata import require_testdata
from module.gen.module.v1 import module_pb2
from module.gen.service.mlmodel.v1 import mlmodel_pb2, mlmodel_pb2_grpc
from module.gen.service.vision.v1 import vision_pb2

pytestmark = pytest.mark.timeout(900)

SSD = "models/coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite"
CAT = "images/cat.bmp"
FIRST_START_TIMEOUT_S = 600.0  # ./run.sh may be creating .venv (viam-server allows 5 min by default)
SIGTERM_BUDGET_S = 3.0  # viam-server waits StopTimeout/3 (3.3 s) after SIGTERM, then signals the whole group
REFLECTION_V1ALPHA = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
REFLECTION_V1 = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"


# --- helpers ---------------------------------------------------------------------------------------------------------

@dataclass
class Session:
    """A module started by ./run.sh next to a fake parent, Ready answered."""

    dir: str
    parent: FakeParent
    module: ModuleProcess
    ready_replies: list[module_pb2.ReadyResponse] = field(default_factory=list)
    resource_names_at_ready: int = 0
    socket_wait_s: float = 0.0
    ready_s: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

    def close(self) -> None:
        self.module.close()
        self.parent.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def start_session(env: dict[str, str] | None = None, *, ready: bool = True, tcp: bool = False) -> Session:
    """Start a fake parent and the module through ./run.sh; with ``ready``, call Ready twice as viam-server may."""
    directory = short_tempdir()
    parent = FakeParent(tcp=True) if tcp else FakeParent(os.path.join(directory, "parent.sock"))
    module = ModuleProcess(via_run_sh=True, socket_dir=directory, env=env,
                           tcp_port=free_tcp_port() if tcp else None)
    session = Session(directory, parent, module)
    try:
        started = time.monotonic()
        session.socket_wait_s = module.wait_for_socket(timeout=FIRST_START_TIMEOUT_S)
        if ready:
            for _ in range(2):  # Ready must be idempotent: viam-server repeats it
                session.ready_replies.append(module.ready(parent.address))
            session.resource_names_at_ready = len(parent.calls("ResourceNames"))
        session.ready_s = time.monotonic() - started
    except BaseException:
        session.close()
        raise
    return session


def rpc_error(call: Any, *args: Any, **kwargs: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call(*args, **kwargs)
    return info.value


def detections_from_camera(module: ModuleProcess, vision: str, camera: str, timeout: float = 20) -> list[Any]:
    reply = module.vision.GetDetectionsFromCamera(
        vision_pb2.GetDetectionsFromCameraRequest(name=vision, camera_name=camera), timeout=timeout)
    return list(reply.detections)


def detections_of_bytes(module: ModuleProcess, vision: str, data: bytes, mime: str) -> list[Any]:
    reply = module.vision.GetDetections(vision_pb2.GetDetectionsRequest(name=vision, image=data, mime_type=mime),
                                        timeout=20)
    return list(reply.detections)


def summary(detections: list[Any]) -> list[tuple[str, float, int, int, int, int]]:
    return [(d.class_name, round(d.confidence, 6), d.x_min, d.y_min, d.x_max, d.y_max) for d in detections]


def reflect(channel: grpc.Channel, method: str, request: reflection_pb2.ServerReflectionRequest
            ) -> reflection_pb2.ServerReflectionResponse:
    call = channel.stream_stream(method, request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
                                 response_deserializer=reflection_pb2.ServerReflectionResponse.FromString)
    replies = list(call(iter([request]), timeout=5))
    assert len(replies) == 1
    return replies[0]


def resolve_service(channel: grpc.Channel, method: str, service: str) -> descriptor_pool.DescriptorPool:
    """file_containing_symbol(service), then file_by_filename for every import, transitively; the files must build
    a self-consistent pool that defines ``service``."""
    files: dict[str, descriptor_pb2.FileDescriptorProto] = {}

    def take(reply: reflection_pb2.ServerReflectionResponse, what: str) -> None:
        assert reply.WhichOneof("message_response") == "file_descriptor_response", f"{what}: {reply}"
        for blob in reply.file_descriptor_response.file_descriptor_proto:
            proto = descriptor_pb2.FileDescriptorProto.FromString(blob)
            files[proto.name] = proto

    take(reflect(channel, method, reflection_pb2.ServerReflectionRequest(file_containing_symbol=service)), service)
    pending = [dep for f in list(files.values()) for dep in f.dependency]
    while pending:
        name = pending.pop()
        if name in files:
            continue
        take(reflect(channel, method, reflection_pb2.ServerReflectionRequest(file_by_filename=name)), name)
        assert name in files, f"file_by_filename({name!r}) did not return that file"
        pending.extend(files[name].dependency)

    pool = descriptor_pool.DescriptorPool()
    added: set[str] = set()

    def add(name: str) -> None:
        if name not in added:
            for dep in files[name].dependency:
                add(dep)
            pool.Add(files[name])
            added.add(name)

    for name in files:
        add(name)
    return pool


# --- the shared session ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def session() -> Iterator[Session]:
    testdata = require_testdata(SSD, CAT)
    s = start_session()
    try:
        s.parent.cameras.update({
            "cam-jpeg": frame(testdata / CAT, "image/jpeg"),
            "cam-png": frame(testdata / CAT, "image/png"),
            "cam-rgba": frame(testdata / CAT, "image/vnd.viam.rgba"),
            "cam-rgba-lazy": frame(testdata / CAT, "image/vnd.viam.rgba+lazy"),
            "cam-jpeg-lazy": frame(testdata / CAT, "image/jpeg+lazy"),
            "cam-old-png": frame(testdata / CAT, "image/png", legacy_format=True),
            "cam-old-jpeg": frame(testdata / CAT, "image/jpeg", legacy_format=True),
        })
        started = time.monotonic()
        s.module.add("ssd", MLMODEL, {"model_path": str(testdata / SSD)})
        s.timings["add_ssd_s"] = time.monotonic() - started
        s.module.add("det", VISION, {"mlmodel_name": "ssd", "camera_name": "cam-png"},
                     ("rdk:service:mlmodel/ssd", "rdk:component:camera/cam-png"))
        yield s
    finally:
        s.close()


@pytest.fixture(scope="module")
def cat_reference(session: Session) -> list[Any]:
    """Detections of the original cat.bmp bytes, sent directly (no camera)."""
    data = (require_testdata(CAT) / CAT).read_bytes()
    return detections_of_bytes(session.module, "det", data, "image/bmp")


# --- Ready, handler map, reflection, logs ----------------------------------------------------------------------------

def test_ready_is_idempotent_and_connects_to_the_parent_once(session: Session) -> None:
    first, second = session.ready_replies
    assert first.ready and second.ready
    assert first == second
    handlers = {(h.subtype.subtype.namespace, h.subtype.subtype.type, h.subtype.subtype.subtype):
                (h.subtype.proto_service, list(h.models)) for h in first.handlermap.handlers}
    assert handlers == {
        ("rdk", "service", "mlmodel"): ("viam.service.mlmodel.v1.MLModelService", [MLMODEL[1]]),
        ("rdk", "service", "vision"): ("viam.service.vision.v1.VisionService", [VISION[1]]),
    }
    # One parent connection, checked once (ResourceNames), however often Ready came.
    assert session.resource_names_at_ready == 1
    assert not first.webrtc_answer
    print(f"\nstartup: socket after {session.socket_wait_s:.2f} s, Ready x2 done after {session.ready_s:.2f} s")


def test_socket_is_private_to_the_owner(session: Session) -> None:
    mode = stat.S_IMODE(os.stat(session.module.socket).st_mode)
    assert stat.S_ISSOCK(os.stat(session.module.socket).st_mode)
    assert mode == 0o600, oct(mode)


def test_every_handler_resolves_through_reflection(session: Session) -> None:
    channel = session.module.channel
    assert channel is not None
    services = [h.subtype.proto_service for h in session.ready_replies[0].handlermap.handlers]
    expected_methods = {
        "viam.service.mlmodel.v1.MLModelService": {"Infer", "Metadata"},
        "viam.service.vision.v1.VisionService": {"GetDetectionsFromCamera", "GetDetections", "GetClassifications",
                                                 "GetClassificationsFromCamera", "GetProperties",
                                                 "CaptureAllFromCamera", "DoCommand"},
    }
    for service in services:
        # What viam-server does (grpcreflect v1alpha FindSymbol), through grpcio-reflection's client database.
        by_db = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel)).FindServiceByName(service)
        assert expected_methods[service] <= {m.name for m in by_db.methods}
        # And by hand, on v1alpha and on v1: every transitive import must be served and fit together.
        for method in (REFLECTION_V1ALPHA, REFLECTION_V1):
            described = resolve_service(channel, method, service).FindServiceByName(service)
            assert expected_methods[service] <= {m.name for m in described.methods}, method
    unknown = reflect(channel, REFLECTION_V1ALPHA,
                      reflection_pb2.ServerReflectionRequest(file_containing_symbol="no.such.Service"))
    assert unknown.WhichOneof("message_response") == "error_response"
    assert unknown.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]


def test_logs_reach_the_parent_one_entry_per_call(session: Session) -> None:
    # The module logs every AddResource; after Ready those records go to the parent through RobotService.Log.
    def about_ssd() -> list[Any]:
        return [e for e in session.parent.logs()
                if e.logger_name == "module/resource/lifecycle" and "rdk:service:mlmodel/ssd" in e.message]

    assert session.parent.wait_for(lambda: bool(about_ssd()), timeout=10), [e.message for e in session.parent.logs()]
    logs = session.parent.logs()
    assert session.parent.rejected_logs() == []
    added = about_ssd()[0]
    assert added.level == "info"
    assert added.logger_name == "module/resource/lifecycle"  # dots become slashes, as the Python SDK sends them
    assert added.message.startswith("lifecycle.py:")  # "<file>:<line>\t<message>"
    assert added.time.seconds > 0
    assert added.caller.fields["Defined"].bool_value
    assert {e.level for e in logs} <= {"debug", "info", "warn", "error"}


# --- ValidateConfig --------------------------------------------------------------------------------------------------

def test_validate_config_returns_the_implicit_dependencies(session: Session) -> None:
    reply = session.module.validate("v", VISION, {"mlmodel_name": "ssd", "camera_name": "cam-jpeg"})
    assert sorted(reply.dependencies) == ["cam-jpeg", "ssd"]
    assert list(reply.optional_dependencies) == []
    reply = session.module.validate("v", VISION, {"mlmodel_name": "ssd"})
    assert list(reply.dependencies) == ["ssd"]
    reply = session.module.validate("m", MLMODEL, {"model_path": "/models/x.tflite"})
    assert list(reply.dependencies) == []


@pytest.mark.parametrize(("kind", "attributes", "attribute"), [
    (VISION, {"camera_name": "cam"}, "mlmodel_name"),
    (VISION, {"mlmodel_name": "ssd", "default_minimum_confidence": 1.5}, "default_minimum_confidence"),
    (VISION, {"mlmodel_name": "ssd", "no_such_attribute": 1}, "no_such_attribute"),
    (MLMODEL, {"model_path": "/models/x.onnx"}, "model_path"),
    (MLMODEL, {"model_path": "/models/x.tflite", "num_threads": "four"}, "num_threads"),
])
def test_validate_config_rejects_bad_attributes(session: Session, kind: tuple[str, str], attributes: dict[str, Any],
                                                attribute: str) -> None:
    error = rpc_error(session.module.validate, "bad", kind, attributes)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert attribute in error.details()


# --- camera frames through the parent --------------------------------------------------------------------------------

def test_detections_from_every_camera_encoding(session: Session, cat_reference: list[Any]) -> None:
    assert cat_reference and cat_reference[0].class_name == "cat" and cat_reference[0].confidence >= 0.7
    # Lossless frames carry the same pixels as cat.bmp: exactly the same detections.
    for camera in ("cam-png", "cam-rgba", "cam-rgba-lazy", "cam-old-png"):
        assert summary(detections_from_camera(session.module, "det", camera)) == summary(cat_reference), camera
    for camera in ("cam-jpeg", "cam-jpeg-lazy", "cam-old-jpeg"):
        top = detections_from_camera(session.module, "det", camera)[0]
        assert top.class_name == "cat" and top.confidence >= 0.6, camera
    # Every detection has all four pixel coordinates (viam-server rejects a detection that lacks one).
    for d in cat_reference:
        assert all(d.HasField(f) for f in ("x_min", "y_min", "x_max", "y_max")), d
    names = {c.name for c in session.parent.calls("GetImages")}
    assert {"cam-png", "cam-rgba", "cam-jpeg", "cam-old-png"} <= names


def test_default_camera_and_unknown_camera(session: Session, cat_reference: list[Any]) -> None:
    # No camera_name in the request: the configured camera_name (cam-png) is used.
    assert summary(detections_from_camera(session.module, "det", "")) == summary(cat_reference)
    error = rpc_error(detections_from_camera, session.module, "det", "no-such-cam")
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert "no-such-cam" in error.details()


def test_parent_faults_become_clear_errors(session: Session) -> None:
    parent = session.parent
    parent.fault("GetImages", grpc.StatusCode.INTERNAL, details="camera exploded", times=1)
    error = rpc_error(detections_from_camera, session.module, "det", "cam-jpeg")
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert "cam-jpeg" in error.details() and "camera exploded" in error.details()
    # A parent slower than the caller's deadline: the caller gets DEADLINE_EXCEEDED, and the module stays healthy.
    parent.fault("GetImages", delay=2.0, times=1)
    error = rpc_error(detections_from_camera, session.module, "det", "cam-jpeg", timeout=0.5)
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert detections_from_camera(session.module, "det", "cam-jpeg")[0].class_name == "cat"


def test_get_image_fallback_on_an_old_server(session: Session, cat_reference: list[Any]) -> None:
    parent = session.parent
    before = len(parent.calls("GetImage"))
    parent.old_server = True
    try:
        found = detections_from_camera(session.module, "det", "cam-png")
    finally:
        parent.old_server = False
    legacy = parent.calls("GetImage")[before:]
    assert [c.name for c in legacy] == ["cam-png"]
    assert found and found[0].class_name == "cat" and found[0].confidence >= 0.6


def test_capture_all_returns_the_frame_and_detections(session: Session, cat_reference: list[Any]) -> None:
    reply = session.module.vision.CaptureAllFromCamera(vision_pb2.CaptureAllFromCameraRequest(
        name="det", camera_name="cam-rgba", return_image=True, return_detections=True,
        return_classifications=True), timeout=20)
    assert reply.image.image == session.parent.cameras["cam-rgba"].data
    assert reply.image.mime_type == "image/vnd.viam.rgba"
    assert reply.image.source_name == "cam-rgba"
    assert summary(list(reply.detections)) == summary(cat_reference)
    assert list(reply.classifications) == []  # a detector: classifications are skipped, not an error


# --- a vision service whose mlmodel lives elsewhere (reached through the parent) ------------------------------------

def test_vision_with_an_mlmodel_behind_the_parent(session: Session, cat_reference: list[Any]) -> None:
    # viam-server would route "remote-ssd" to whichever module serves it; here the parent forwards to our own "ssd".
    stub = mlmodel_pb2_grpc.MLModelServiceStub(session.module.channel)
    seen: list[str] = []

    def forward(method: str, request: Any) -> Any:
        seen.append(method)
        renamed = type(request)()
        renamed.CopyFrom(request)
        renamed.name = "ssd"
        return getattr(stub, method)(renamed, timeout=20)

    session.parent.mlmodel = forward
    try:
        session.module.add("det-remote", VISION, {"mlmodel_name": "remote-ssd"}, ("rdk:service:mlmodel/remote-ssd",))
        data = (require_testdata(CAT) / CAT).read_bytes()
        assert summary(detections_of_bytes(session.module, "det-remote", data, "image/bmp")) == summary(cat_reference)
        assert "Metadata" in seen and "Infer" in seen
        # The remote model going away is UNAVAILABLE (retryable) naming it, not a crash.
        session.parent.mlmodel = None
        error = rpc_error(detections_of_bytes, session.module, "det-remote", data, "image/bmp")
        assert error.code() == grpc.StatusCode.UNAVAILABLE
        assert "'remote-ssd' is not available" in error.details() and "NOT_FOUND" in error.details()
    finally:
        session.parent.mlmodel = None
        session.module.remove("rdk:service:vision/det-remote")


# --- Reconfigure, Remove + Add, Remove --------------------------------------------------------------------------------

def test_reconfigure_in_place_and_a_failed_reconfigure_keeps_the_old(session: Session, cat_reference: list[Any]
                                                                     ) -> None:
    m = session.module
    m.add("det-rc", VISION, {"mlmodel_name": "ssd"}, ("rdk:service:mlmodel/ssd",))
    data = (require_testdata(CAT) / CAT).read_bytes()
    everything = detections_of_bytes(m, "det-rc", data, "image/bmp")
    assert len(everything) > 1 and min(d.confidence for d in everything) < 0.5
    # v0.x servers: ReconfigureResource with the same model.
    m.reconfigure("det-rc", VISION, {"mlmodel_name": "ssd", "default_minimum_confidence": 0.5},
                  ("rdk:service:mlmodel/ssd",))
    confident = detections_of_bytes(m, "det-rc", data, "image/bmp")
    assert confident and all(d.confidence >= 0.5 for d in confident)
    assert summary(confident) == [s for s in summary(everything) if s[1] >= 0.5]
    # A reconfigure that cannot be built (its mlmodel does not exist anywhere) fails, and the old one keeps serving.
    error = rpc_error(m.reconfigure, "det-rc", VISION, {"mlmodel_name": "nowhere"}, ("rdk:service:mlmodel/nowhere",))
    assert error.code() != grpc.StatusCode.OK and "nowhere" in error.details()
    assert summary(detections_of_bytes(m, "det-rc", data, "image/bmp")) == summary(confident)
    # Same for an mlmodel whose new model file is missing.
    error = rpc_error(m.reconfigure, "ssd", MLMODEL, {"model_path": "/no/such/model.tflite"})
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "/no/such/model.tflite" in error.details()
    assert m.mlmodel.Metadata(mlmodel_pb2.MetadataRequest(name="ssd"), timeout=10).metadata.output_info
    # v1.0+ servers: RemoveResource, then AddResource with the new config.
    m.remove("rdk:service:vision/det-rc")
    m.add("det-rc", VISION, {"mlmodel_name": "ssd", "default_minimum_confidence": 0.7}, ("rdk:service:mlmodel/ssd",))
    strict = detections_of_bytes(m, "det-rc", data, "image/bmp")
    assert summary(strict) == [s for s in summary(everything) if s[1] >= 0.7]
    m.remove("rdk:service:vision/det-rc")


def test_add_replaces_a_leftover_resource_of_the_same_name(session: Session) -> None:
    m = session.module
    m.add("det-dup", VISION, {"mlmodel_name": "ssd", "default_minimum_confidence": 0.9}, ("rdk:service:mlmodel/ssd",))
    m.add("det-dup", VISION, {"mlmodel_name": "ssd", "default_minimum_confidence": 0.1}, ("rdk:service:mlmodel/ssd",))
    data = (require_testdata(CAT) / CAT).read_bytes()
    assert detections_of_bytes(m, "det-dup", data, "image/bmp")  # the second config (0.1) is the one serving
    m.remove("rdk:service:vision/det-dup")


def test_remove_resource_then_not_found(session: Session) -> None:
    m = session.module
    m.add("det-rm", VISION, {"mlmodel_name": "ssd"}, ("rdk:service:mlmodel/ssd",))
    m.remove("rdk:service:vision/det-rm")
    error = rpc_error(m.vision.GetProperties, vision_pb2.GetPropertiesRequest(name="det-rm"), timeout=5)
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert "det-rm" in error.details() and "'det'" in error.details()  # says what does exist
    error = rpc_error(m.remove, "rdk:service:vision/det-rm")
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert "det-rm" in error.details()


# --- processes of their own: shutdown, no parent, parent loss, TCP ---------------------------------------------------

def test_sigterm_exits_cleanly_and_quickly_with_a_call_in_flight() -> None:
    testdata = require_testdata(SSD, CAT)
    s = start_session()
    try:
        s.parent.cameras["cam"] = frame(testdata / CAT, "image/jpeg")
        started = time.monotonic()
        s.module.add("ssd", MLMODEL, {"model_path": str(testdata / SSD)})
        add_s = time.monotonic() - started
        s.module.add("det", VISION, {"mlmodel_name": "ssd"}, ("rdk:service:mlmodel/ssd",))
        s.parent.fault("GetImages", delay=0.5, times=1)
        outcome: dict[str, Any] = {}

        def in_flight() -> None:
            try:
                outcome["detections"] = detections_from_camera(s.module, "det", "cam")
            except grpc.RpcError as exc:
                outcome["error"] = exc.code()

        caller = threading.Thread(target=in_flight)
        caller.start()
        assert s.parent.wait_for(lambda: bool(s.parent.calls("GetImages")), timeout=10)
        code, took = s.module.stop(signal.SIGTERM, timeout=SIGTERM_BUDGET_S)
        caller.join(10)
        print(f"\nSIGTERM: exit code {code} after {took:.2f} s; AddResource(SSD) {add_s:.2f} s; "
              f"startup to Ready {s.ready_s:.2f} s")
        assert code == 0, s.module.log()
        assert not os.path.exists(s.module.socket)
        # The call that was running when SIGTERM came finished within the grace period.
        assert "detections" in outcome, outcome
    finally:
        s.close()


def test_no_module_parent_ready_without_a_parent() -> None:
    s = start_session({"VIAM_NO_MODULE_PARENT": "true"}, ready=False)
    try:
        reply = s.module.ready(os.path.join(s.dir, "nonexistent", "parent.sock"))
        assert reply.ready and len(reply.handlermap.handlers) == 2
        assert s.parent.calls() == []
        code, _ = s.module.stop(signal.SIGTERM, timeout=SIGTERM_BUDGET_S)
        assert code == 0, s.module.log()
    finally:
        s.close()


def test_parent_gone_for_good_the_module_exits_by_itself() -> None:
    s = start_session({"TFLITE_MODULE_PARENT_GRACE_S": "2"}, ready=False)
    try:
        # A parent that is not there (yet) fails Ready with a retryable code, and does not spoil a later Ready.
        error = rpc_error(s.module.module.Ready, module_pb2.ReadyRequest(
            parent_address=os.path.join(s.dir, "nothing.sock")), timeout=3)
        assert error.code() == grpc.StatusCode.UNAVAILABLE
        assert s.module.ready(s.parent.address).ready
        s.parent.stop()
        try:
            s.module.proc.wait(30)
        except Exception:
            pytest.fail(f"the module kept running without its parent:\n{s.module.log()}")
        assert s.module.proc.returncode == 0, s.module.log()
        assert not os.path.exists(s.module.socket)
    finally:
        s.close()


def test_parent_restart_within_the_grace_period_camera_works_again() -> None:
    testdata = require_testdata(SSD, CAT)
    s = start_session({"TFLITE_MODULE_PARENT_GRACE_S": "60"})
    try:
        s.parent.cameras["cam"] = frame(testdata / CAT, "image/png")
        s.module.add("ssd", MLMODEL, {"model_path": str(testdata / SSD)})
        s.module.add("det", VISION, {"mlmodel_name": "ssd", "camera_name": "cam"}, ("rdk:service:mlmodel/ssd",))
        before = detections_from_camera(s.module, "det", "cam")
        s.parent.stop()
        error = rpc_error(detections_from_camera, s.module, "det", "cam", timeout=5)
        assert error.code() == grpc.StatusCode.UNAVAILABLE
        time.sleep(2.5)  # let the module notice (its watchdog checks every 2 s)
        s.parent.restart()
        deadline = time.monotonic() + 30
        after: list[Any] | None = None
        while after is None and time.monotonic() < deadline:
            try:
                after = detections_from_camera(s.module, "det", "cam", timeout=5)
            except grpc.RpcError:
                time.sleep(0.3)
        assert after is not None, s.module.log()
        assert summary(after) == summary(before)
        assert s.module.proc.poll() is None
        code, _ = s.module.stop(signal.SIGTERM, timeout=SIGTERM_BUDGET_S)
        assert code == 0, s.module.log()
    finally:
        s.close()


def test_tcp_mode() -> None:
    testdata = require_testdata(SSD, CAT)
    s = start_session(tcp=True)
    try:
        assert s.module.address.startswith("127.0.0.1:")
        assert not os.path.exists(s.module.socket)
        assert s.resource_names_at_ready == 1
        s.parent.cameras["cam"] = frame(testdata / CAT, "image/jpeg")
        s.module.add("ssd", MLMODEL, {"model_path": str(testdata / SSD)})
        s.module.add("det", VISION, {"mlmodel_name": "ssd"}, ("rdk:service:mlmodel/ssd",))
        top = detections_from_camera(s.module, "det", "cam")[0]
        assert top.class_name == "cat" and top.confidence >= 0.6
        assert s.parent.wait_for(lambda: bool(s.parent.calls("Log")), timeout=10)
        # Everything the module sent the parent came over one connection (one channel, connected once).
        peers = {c.peer for c in s.parent.calls()}
        assert len(peers) == 1 and next(iter(peers)).startswith("ipv4:127.0.0.1:"), peers
        code, _ = s.module.stop(signal.SIGTERM, timeout=SIGTERM_BUDGET_S)
        assert code == 0, s.module.log()
    finally:
        s.close()
