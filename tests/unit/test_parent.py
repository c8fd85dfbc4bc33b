"""module/parent.py (ParentClient) and module/logs.py (ParentLogHandler) against the fake viam-server parent
(devkit/standin/parent.py), in-process: frames in every encoding the parent sends, the GetImage fallback for old servers,
remote mlmodel calls, logs with viam-server's rules, and how each parent failure reaches the caller."""

from __future__ import annotations

import logging
import struct
import time
from typing import Any

import grpc
import numpy as np
import PIL.Image
import pytest

from devkit.standin.parent import CameraFrame, DepthData, FakeParent, HandlerError, frame
from module.errors import DeadlineError, FailedPreconditionError, InvalidInputError, NotFoundError, UnavailableError
from module.gen.common.v1 import common_pb2
from module.gen.robot.v1 import robot_pb2, robot_pb2_grpc
from module.gen.service.mlmodel.v1 import mlmodel_pb2
from module.logs import ParentLogHandler
from module.mlmodel import flat_tensors
from module.mlmodel.remote import RemoteModel
from module.mlmodel.types import ModelInfo, TensorInfo
from module.mlmodel.wire import info_to_proto
from module.parent import ParentClient
from module.server import CHANNEL_OPTIONS
from module.vision.imaging import open_image


@pytest.fixture
def image() -> PIL.Image.Image:
    """A small image with distinct pixels, so any decoding mistake (channel order, rows) shows."""
    rng = np.random.default_rng(7)
    return PIL.Image.fromarray(rng.integers(0, 256, size=(24, 32, 3), dtype=np.uint8), "RGB")


def pixels(data: bytes, mime: str) -> np.ndarray:
    return np.asarray(open_image(data, mime).convert("RGB"))


# --- the fake itself -------------------------------------------------------------------------------------------------

def test_rgba_frames_carry_viams_12_byte_header() -> None:
    img = PIL.Image.new("RGB", (3, 2), (10, 20, 30))
    data = frame(img, "image/vnd.viam.rgba").data
    assert data[:4] == b"RGBA" and struct.unpack(">II", data[4:12]) == (3, 2)
    assert len(data) == 12 + 3 * 2 * 4 and data[12:16] == bytes([10, 20, 30, 255])


def test_fake_parent_rejects_log_batches_and_unknown_levels(parent: FakeParent) -> None:
    with grpc.insecure_channel(f"unix:{parent.address}") as channel:
        robot = robot_pb2_grpc.RobotServiceStub(channel)
        entry = common_pb2.LogEntry(level="info", message="one")
        robot.Log(robot_pb2.LogRequest(logs=[entry]), timeout=5)
        for bad in ([entry, entry], [], [common_pb2.LogEntry(level="critical", message="x")]):
            with pytest.raises(grpc.RpcError) as info:
                robot.Log(robot_pb2.LogRequest(logs=bad), timeout=5)
            assert info.value.code() == grpc.StatusCode.UNKNOWN
        assert "batching not yet supported" in parent.rejected_logs()[0][0]
        assert [e.message for e in parent.logs()] == ["one"]
        robot.Log(robot_pb2.LogRequest(logs=[common_pb2.LogEntry(level="WARNING", message="two")]), timeout=5)
        assert [e.message for e in parent.logs()] == ["one", "two"]


# --- frames ----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mime", ["image/png", "image/vnd.viam.rgba", "image/vnd.viam.rgba+lazy", "image/png+lazy"])
def test_lossless_frames_arrive_pixel_exact(parent: FakeParent, client: ParentClient, image: PIL.Image.Image,
                                            mime: str) -> None:
    parent.cameras["cam"] = frame(image, mime)
    got = client.get_frame("cam", timeout=5)
    assert got.mime_type == mime and got.source_name == "cam"
    assert got.data == parent.cameras["cam"].data
    np.testing.assert_array_equal(pixels(got.data, got.mime_type), np.asarray(image))


def test_jpeg_frame(parent: FakeParent, client: ParentClient, image: PIL.Image.Image) -> None:
    parent.cameras["cam"] = frame(image, "image/jpeg", source_name="left")
    got = client.get_frame("cam", timeout=5)
    assert (got.mime_type, got.source_name) == ("image/jpeg", "left")
    assert pixels(got.data, got.mime_type).shape == (24, 32, 3)


@pytest.mark.parametrize(("mime", "expected"), [("image/jpeg", "image/jpeg"), ("image/png", "image/png"),
                                                ("image/vnd.viam.rgba", "image/vnd.viam.rgba")])
def test_servers_before_mime_type_send_the_format_enum(parent: FakeParent, client: ParentClient,
                                                      image: PIL.Image.Image, mime: str, expected: str) -> None:
    parent.cameras["cam"] = frame(image, mime, legacy_format=True)
    assert parent.cameras["cam"].mime_type == ""
    got = client.get_frame("cam", timeout=5)
    assert got.mime_type == expected
    assert pixels(got.data, got.mime_type).shape == (24, 32, 3)


def test_old_server_get_image_fallback(parent: FakeParent, client: ParentClient, image: PIL.Image.Image) -> None:
    parent.cameras["cam"] = frame(image, "image/png")
    parent.old_server = True
    got = client.get_frame("cam", timeout=5)
    assert [c.method for c in parent.calls()] == ["GetImages", "GetImage"]
    assert got.mime_type == "image/jpeg"  # the module asks old servers for JPEG
    assert pixels(got.data, got.mime_type).shape == (24, 32, 3)
    # A new server answers GetImage with UNIMPLEMENTED; the module never needs it there.
    parent.old_server = False
    client.get_frame("cam", timeout=5)
    assert [c.method for c in parent.calls()][-1] == "GetImages"


def test_several_images_the_first_is_used_and_none_is_unavailable(parent: FakeParent, client: ParentClient,
                                                                   image: PIL.Image.Image) -> None:
    parent.cameras["stereo"] = [frame(image, "image/png", source_name="left"),
                                frame(image.transpose(PIL.Image.Transpose.FLIP_LEFT_RIGHT), "image/jpeg",
                                      source_name="right")]
    got = client.get_frame("stereo", timeout=5)
    assert (got.source_name, got.mime_type) == ("left", "image/png")
    parent.cameras["blind"] = []
    with pytest.raises(UnavailableError, match="blind"):
        client.get_frame("blind", timeout=5)


@pytest.mark.parametrize(("code", "error"), [
    (grpc.StatusCode.NOT_FOUND, NotFoundError),
    (grpc.StatusCode.INVALID_ARGUMENT, InvalidInputError),
    (grpc.StatusCode.INTERNAL, UnavailableError),
    (grpc.StatusCode.UNAVAILABLE, UnavailableError),
    (grpc.StatusCode.RESOURCE_EXHAUSTED, UnavailableError),
])
def test_camera_errors_keep_their_meaning(parent: FakeParent, client: ParentClient, image: PIL.Image.Image,
                                          code: grpc.StatusCode, error: type[Exception]) -> None:
    parent.cameras["cam"] = frame(image, "image/png")
    parent.fault("GetImages", code, details="boom", times=1)
    with pytest.raises(error) as info:
        client.get_frame("cam", timeout=5)
    assert "cam" in str(info.value) and "boom" in str(info.value)
    assert client.get_frame("cam", timeout=5).data  # the fault was one call only


def test_unknown_camera_is_not_found(client: ParentClient) -> None:
    with pytest.raises(NotFoundError, match="nope"):
        client.get_frame("nope", timeout=5)


def test_slow_camera_is_a_deadline_error(parent: FakeParent, client: ParentClient, image: PIL.Image.Image) -> None:
    parent.cameras["cam"] = frame(image, "image/png")
    parent.fault("GetImages", delay=1.0, times=1)
    with pytest.raises(DeadlineError):
        client.get_frame("cam", timeout=0.2)


def test_parent_gone_and_back(parent: FakeParent, client: ParentClient, image: PIL.Image.Image) -> None:
    parent.cameras["cam"] = frame(image, "image/png")
    client.check()
    parent.stop()
    with pytest.raises(UnavailableError):
        client.check(timeout=1)
    with pytest.raises(UnavailableError):
        client.get_frame("cam", timeout=1)
    parent.restart()
    deadline = time.monotonic() + 20
    while True:  # the channel reconnects on its own (with gRPC's backoff)
        try:
            client.check(timeout=1)
            break
        except UnavailableError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    assert client.get_frame("cam", timeout=5).data == parent.cameras["cam"].data


def test_tcp_parent(image: PIL.Image.Image) -> None:
    parent = FakeParent(tcp=True)
    client = ParentClient(parent.address, tcp=True)
    try:
        parent.cameras["cam"] = frame(image, "image/png")
        client.check()
        assert client.get_frame("cam", timeout=5).data == parent.cameras["cam"].data
        assert all(c.peer.startswith("ipv4:127.0.0.1:") for c in parent.calls())
    finally:
        client.close()
        parent.close()


# --- remote mlmodel --------------------------------------------------------------------------------------------------

def test_remote_mlmodel_metadata_and_infer(parent: FakeParent, client: ParentClient) -> None:
    info = ModelInfo(name="m", type="tflite", description="d",
                     inputs=(TensorInfo("x", "int16", (1, 3)),), outputs=(TensorInfo("y", "float64", (1, 3)),))
    requests: list[Any] = []

    def handler(method: str, request: Any) -> Any:
        requests.append((method, request.name))
        if method == "Metadata":
            return mlmodel_pb2.MetadataResponse(metadata=info_to_proto(info))
        x = flat_tensors.decode_all(request.input_tensors)["x"]
        return mlmodel_pb2.InferResponse.FromString(flat_tensors.infer_response_bytes({"y": x.astype(np.float64) * 0.5}))

    parent.mlmodel = handler
    assert RemoteModel(client, "m").metadata() == info
    out = RemoteModel(client, "m").infer({"x": np.array([[-3, 0, 32767]], np.int16)})
    np.testing.assert_array_equal(out["y"], np.array([[-1.5, 0.0, 16383.5]]))
    assert out["y"].dtype == np.float64
    assert requests == [("Metadata", "m"), ("Infer", "m")]


def test_remote_mlmodel_errors(parent: FakeParent, client: ParentClient) -> None:
    with pytest.raises(NotFoundError, match="m"):
        RemoteModel(client, "m").metadata()

    def handler(method: str, request: Any) -> Any:
        raise HandlerError(grpc.StatusCode.INVALID_ARGUMENT, "input x has the wrong shape")

    parent.mlmodel = handler
    with pytest.raises(InvalidInputError, match="wrong shape"):
        RemoteModel(client, "m").infer({"x": np.zeros((1, 3), np.float32)})
    parent.fault("Infer", delay=1.0, times=1)
    with pytest.raises(DeadlineError):
        RemoteModel(client, "m").infer({"x": np.zeros((1, 3), np.float32)}, timeout=0.2)


# --- logs ------------------------------------------------------------------------------------------------------------

def test_log_handler_sends_one_valid_entry_per_record(parent: FakeParent, client: ParentClient) -> None:
    handler = ParentLogHandler(client)
    logger = logging.getLogger("module.test.parentlog")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        logger.debug("d %d", 1)
        logger.info("i")
        logger.warning("w")
        logger.error("e")
        logger.critical("c")  # viam-server has no "critical": it must arrive as error, not be rejected
        assert parent.wait_for(lambda: len(parent.logs()) == 5, timeout=10), parent.rejected_logs()
    finally:
        logger.removeHandler(handler)
        handler.close()
    logs = parent.logs()
    assert [e.level for e in logs] == ["debug", "info", "warn", "error", "error"]
    assert parent.rejected_logs() == []
    assert logs[0].logger_name == "module/test/parentlog"
    assert logs[0].message.startswith("test_parent.py:") and logs[0].message.endswith("\td 1")
    assert logs[0].caller.fields["Function"].string_value == "test_log_handler_sends_one_valid_entry_per_record"
    assert len(parent.calls("Log")) == 5  # one request per record


def test_log_handler_falls_back_to_stderr_when_the_parent_rejects(parent: FakeParent, client: ParentClient,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    parent.fault("Log", grpc.StatusCode.UNAVAILABLE)
    handler = ParentLogHandler(client)
    record = logging.LogRecord("module.x", logging.WARNING, __file__, 1, "kept %s", ("here",), None)
    handler.handle(record)
    assert parent.wait_for(lambda: len(parent.calls("Log")) == 1, timeout=10)
    handler.close()
    deadline = time.monotonic() + 5
    err = ""
    while "kept here" not in err and time.monotonic() < deadline:
        time.sleep(0.05)
        err += capsys.readouterr().err
    assert "kept here" in err
    assert parent.logs() == []


def test_channel_options_allow_large_frames(parent: FakeParent, client: ParentClient) -> None:
    """Camera frames above grpcio's 4 MiB default must pass (viam-server allows 32 MiB)."""
    big = PIL.Image.frombytes("RGB", (1400, 1400), np.random.default_rng(1).bytes(1400 * 1400 * 3))
    parent.cameras["big"] = frame(big, "image/vnd.viam.rgba")
    assert len(parent.cameras["big"].data) > 4 * 1024 * 1024
    assert client.get_frame("big", timeout=10).data == parent.cameras["big"].data
    assert dict(CHANNEL_OPTIONS)["grpc.max_receive_message_length"] >= 32 * 1024 * 1024


# --- depth cameras: GetProperties and GetPointCloud ------------------------------------------------------------------

def test_camera_properties_with_and_without_intrinsics(parent: FakeParent, client: ParentClient) -> None:
    parent.cameras["depth"] = parent.cameras["flat"] = CameraFrame(b"", "image/png")
    parent.point_clouds["depth"] = DepthData(b"pcd bytes", (640, 480, 600.0, 601.0, 319.5, 239.5))
    props = client.camera_properties("depth")
    assert props.supports_pcd and props.intrinsics == (640, 480, 600.0, 601.0, 319.5, 239.5)
    flat = client.camera_properties("flat")
    assert not flat.supports_pcd and flat.intrinsics is None
    point_cloud = client.get_point_cloud("depth")
    assert (point_cloud.data, point_cloud.mime_type) == (b"pcd bytes", "pointcloud/pcd")


def test_camera_properties_are_cached_until_forgotten(parent: FakeParent, client: ParentClient) -> None:
    parent.cameras["depth"] = CameraFrame(b"", "image/png")
    parent.point_clouds["depth"] = DepthData(b"", (640, 480, 600.0, 600.0, 320.0, 240.0))
    client.camera_properties("depth")
    parent.point_clouds["depth"] = DepthData(b"", (320, 240, 300.0, 300.0, 160.0, 120.0))
    assert client.camera_properties("depth").intrinsics == (640, 480, 600.0, 600.0, 320.0, 240.0)
    client.forget_camera("depth")
    assert client.camera_properties("depth").intrinsics == (320, 240, 300.0, 300.0, 160.0, 120.0)
    assert len(parent.calls("GetProperties")) == 2


@pytest.mark.parametrize(("code", "error"), [
    (grpc.StatusCode.UNIMPLEMENTED, FailedPreconditionError),  # the camera's answer: it has no point cloud
    (grpc.StatusCode.UNKNOWN, FailedPreconditionError),
    (grpc.StatusCode.INTERNAL, FailedPreconditionError),
    (grpc.StatusCode.UNAVAILABLE, UnavailableError),  # the call did not get through: not the camera's fault
    (grpc.StatusCode.NOT_FOUND, NotFoundError),
    (grpc.StatusCode.DEADLINE_EXCEEDED, DeadlineError),
])
def test_get_point_cloud_failures(parent: FakeParent, client: ParentClient, code: grpc.StatusCode,
                                  error: type[Exception]) -> None:
    parent.cameras["depth"] = CameraFrame(b"", "image/png")
    parent.point_clouds["depth"] = DepthData(b"", None)
    parent.fault("GetPointCloud", code, details="the reason", times=1)
    with pytest.raises(error, match="camera 'depth'.*the reason"):
        client.get_point_cloud("depth")
    assert client.get_point_cloud("depth").mime_type == "pointcloud/pcd"
