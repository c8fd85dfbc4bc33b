"""A stand-in for viam-server's module parent socket, for the local runner, the end-to-end tests and the benchmarks.

viam-server serves, on ``<dir>/parent.sock`` (or 127.0.0.1:port in TCP mode), the RobotService and every resource
API. This fake serves the parts a module uses:

* RobotService.ResourceNames (answers :attr:`FakeParent.resource_names`) and RobotService.Log, with viam-server's
  rules: one entry per request ("batching not yet supported") and a level of debug/info/warn/warning/error;
* CameraService.GetImages for the cameras in :attr:`FakeParent.cameras` (a frame, a list of frames, or a
  :class:`CameraSource` such as the local runner's image files; JPEG, PNG, raw ``image/vnd.viam.rgba``,
  any ``+lazy`` suffix, or an empty mime type with the pre-2025 ``format`` field), and CameraService.GetImage as
  older servers had it; ``old_server=True`` makes GetImages UNIMPLEMENTED (servers before the API had it), otherwise
  GetImage is UNIMPLEMENTED (servers >= v0.116); CameraService.GetProperties; CameraService.GetPointCloud for the
  depth cameras in :attr:`FakeParent.point_clouds` (a PCD and the intrinsics GetProperties reports with
  ``supports_pcd`` true; other cameras answer GetPointCloud with UNKNOWN, as rdk's 2D cameras do);
* MLModelService.Infer/Metadata forwarded to :attr:`FakeParent.mlmodel` (a callable), so a vision service can use
  an mlmodel that lives "elsewhere";
* faults: per method, an error status and/or a delay (:meth:`FakeParent.fault`);
* for clients, as viam-server does: calls to a module's resources (:meth:`FakeParent.route`) forwarded to the
  module's socket by gRPC service and resource name, request and response bytes untouched, so an SDK's
  ``RobotClient`` + ``VisionClient.from_robot`` work against this socket; and server reflection.

Every call is recorded in :attr:`FakeParent.calls` with the peer address (distinct per connection over TCP).
:meth:`stop` and :meth:`restart` take the parent away and bring it back on the same address.
"""

from __future__ import annotations

import io
import os
import struct
import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Union

import grpc
import numpy as np
import PIL.Image
from grpc_reflection.v1alpha import reflection
from numpy.typing import NDArray

from module.gen.common.v1 import common_pb2
from module.gen.component.camera.v1 import camera_pb2, camera_pb2_grpc
from module.gen.robot.v1 import robot_pb2, robot_pb2_grpc
from module.gen.service.mlmodel.v1 import mlmodel_pb2, mlmodel_pb2_grpc
from module.gen.service.vision.v1 import vision_pb2
from module.server import CHANNEL_OPTIONS

LOG_LEVELS = frozenset({"debug", "info", "warn", "warning", "error"})
MIME_RGBA = "image/vnd.viam.rgba"


# --- frames ----------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CameraFrame:
    """What GetImages answers for one camera: ``Image{source_name, format, image, mime_type}``."""

    data: bytes
    mime_type: str
    format: int = camera_pb2.FORMAT_UNSPECIFIED
    source_name: str = ""


class CameraSource(Protocol):
    """A camera whose images change between reads (e.g. files played in turn)."""

    def frames(self) -> list[CameraFrame]: ...


CameraValue = Union[CameraFrame, list[CameraFrame], CameraSource]


@dataclass(frozen=True)
class DepthData:
    """What a depth camera adds to its images: GetPointCloud's answer and GetProperties' intrinsics
    (width_px, height_px, focal_x_px, focal_y_px, center_x_px, center_y_px; None: reported without any)."""

    point_cloud: bytes
    intrinsics: tuple[int, int, float, float, float, float] | None
    mime_type: str = "pointcloud/pcd"


def encode_image(image: PIL.Image.Image | str | Path, mime_type: str) -> bytes:
    """``image`` (a Pillow image or a file path) encoded as ``mime_type`` (JPEG quality 95, PNG, or Viam RGBA)."""
    img = image if isinstance(image, PIL.Image.Image) else PIL.Image.open(image)
    base = mime_type.removesuffix("+lazy")
    if base == MIME_RGBA:
        rgba = img.convert("RGBA")
        return b"RGBA" + struct.pack(">II", rgba.width, rgba.height) + rgba.tobytes()
    out = io.BytesIO()
    if base == "image/jpeg":
        img.convert("RGB").save(out, "JPEG", quality=95)
    elif base == "image/png":
        img.save(out, "PNG")
    else:
        raise ValueError(f"cannot encode {mime_type!r}")
    return out.getvalue()


def encode_rgba(pixels: NDArray[np.uint8]) -> bytes:
    """``image/vnd.viam.rgba`` bytes of an H x W x 3 (alpha 255) or H x W x 4 uint8 array, as a camera sends them."""
    return encode_image(PIL.Image.fromarray(pixels), MIME_RGBA)


def frame(image: PIL.Image.Image | str | Path, mime_type: str, *, legacy_format: bool = False,
          source_name: str = "") -> CameraFrame:
    """A camera frame; ``legacy_format`` leaves ``mime_type`` empty and sets the old ``format`` field instead."""
    data = encode_image(image, mime_type)
    if not legacy_format:
        return CameraFrame(data, mime_type, source_name=source_name)
    formats = {"image/jpeg": camera_pb2.FORMAT_JPEG, "image/png": camera_pb2.FORMAT_PNG, MIME_RGBA: camera_pb2.FORMAT_RAW_RGBA}
    return CameraFrame(data, "", formats[mime_type.removesuffix("+lazy")], source_name)


# --- recording and faults --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Call:
    method: str  # e.g. "GetImages"
    name: str  # the request's resource name ("" for RobotService calls)
    peer: str
    at: float  # time.monotonic()


@dataclass
class Fault:
    """Applied to the next ``times`` calls of a method (``None``: every call): sleep ``delay``, then fail with
    ``code`` if one is given."""

    code: grpc.StatusCode | None = None
    details: str = "injected fault"
    delay: float = 0.0
    times: int | None = None


MLModelHandler = Callable[[str, Any], Any]
"""``handler(method, request)`` with method ``"Infer"`` or ``"Metadata"`` returns the response message; it may
raise :class:`HandlerError` to answer with a status code instead."""


class HandlerError(Exception):
    """Raised by an mlmodel handler: the parent answers with this status code and details."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


@dataclass
class _State:
    lock: threading.Lock = field(default_factory=threading.Lock)
    calls: list[Call] = field(default_factory=list)
    logs: list[common_pb2.LogEntry] = field(default_factory=list)
    rejected_logs: list[tuple[str, robot_pb2.LogRequest]] = field(default_factory=list)
    faults: dict[str, Fault] = field(default_factory=dict)


# --- servicers -------------------------------------------------------------------------------------------------------

class _Base:
    def __init__(self, parent: FakeParent) -> None:
        self._parent = parent

    def _enter(self, method: str, name: str, context: grpc.ServicerContext) -> None:
        """Record the call and apply any fault configured for ``method``."""
        state = self._parent.state
        with state.lock:
            state.calls.append(Call(method, name, context.peer(), time.monotonic()))
            fault = state.faults.get(method)
            if fault is not None and fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    del state.faults[method]
        if fault is not None:
            if fault.delay:
                time.sleep(fault.delay)
            if fault.code is not None:
                context.abort(fault.code, fault.details)


class _Robot(_Base, robot_pb2_grpc.RobotServiceServicer):
    def ResourceNames(self, request: robot_pb2.ResourceNamesRequest, context: grpc.ServicerContext) -> Any:
        self._enter("ResourceNames", "", context)
        return robot_pb2.ResourceNamesResponse(resources=list(self._parent.resource_names))

    def Log(self, request: robot_pb2.LogRequest, context: grpc.ServicerContext) -> Any:
        self._enter("Log", "", context)
        state = self._parent.state
        # viam-server (robot/server/server.go: Log): exactly one entry, a level zap knows; the error is a plain Go error.
        if len(request.logs) != 1:
            reason = "LogRequest received with multiple logs; batching not yet supported"
        elif request.logs[0].level.lower() not in LOG_LEVELS:
            reason = f"unrecognized level {request.logs[0].level!r}"
        else:
            with state.lock:
                state.logs.append(request.logs[0])
            if self._parent.on_log is not None:
                self._parent.on_log(request.logs[0])
            return robot_pb2.LogResponse()
        with state.lock:
            state.rejected_logs.append((reason, request))
        context.abort(grpc.StatusCode.UNKNOWN, reason)


class _Camera(_Base, camera_pb2_grpc.CameraServiceServicer):
    def _frames(self, name: str, context: grpc.ServicerContext) -> list[CameraFrame]:
        found = self._parent.cameras.get(name)
        if found is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"resource \"rdk:component:camera/{name}\" not found")
        if isinstance(found, CameraFrame):
            return [found]
        return list(found) if isinstance(found, list) else found.frames()

    def _frame(self, name: str, context: grpc.ServicerContext) -> CameraFrame:
        frames = self._frames(name, context)
        if not frames:
            context.abort(grpc.StatusCode.UNKNOWN, f"camera {name!r} has no image")
        return frames[0]

    def GetImages(self, request: camera_pb2.GetImagesRequest, context: grpc.ServicerContext) -> Any:
        self._enter("GetImages", request.name, context)
        if self._parent.old_server:
            context.abort(grpc.StatusCode.UNIMPLEMENTED,
                          "unknown method GetImages for service viam.component.camera.v1.CameraService")
        images = [camera_pb2.Image(source_name=f.source_name or request.name, format=f.format, image=f.data,
                                   mime_type=f.mime_type) for f in self._frames(request.name, context)]
        return camera_pb2.GetImagesResponse(images=images)

    def GetImage(self, request: camera_pb2.GetImageRequest, context: grpc.ServicerContext) -> Any:
        self._enter("GetImage", request.name, context)
        if not self._parent.old_server:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "GetImage is no longer supported: use GetImages")
        f = self._frame(request.name, context)
        # Old servers encode to the requested mime type; this fake re-encodes when it has to.
        wanted = request.mime_type or f.mime_type or "image/jpeg"
        data, mime = f.data, f.mime_type
        if wanted.removesuffix("+lazy") != (mime or "").removesuffix("+lazy"):
            decoded = PIL.Image.open(io.BytesIO(f.data)) if f.data[:4] != b"RGBA" else _rgba_to_image(f.data)
            data, mime = encode_image(decoded, wanted), wanted
        return camera_pb2.GetImageResponse(mime_type=mime, image=data)


    def GetProperties(self, request: camera_pb2.GetPropertiesRequest, context: grpc.ServicerContext) -> Any:
        self._enter("GetProperties", request.name, context)
        mimes = sorted({f.mime_type for f in self._frames(request.name, context) if f.mime_type})
        depth = self._parent.point_clouds.get(request.name)
        reply = camera_pb2.GetPropertiesResponse(supports_pcd=depth is not None, mime_types=mimes)
        if depth is not None and depth.intrinsics is not None:
            w, h, fx, fy, cx, cy = depth.intrinsics
            reply.intrinsic_parameters.CopyFrom(camera_pb2.IntrinsicParameters(
                width_px=w, height_px=h, focal_x_px=fx, focal_y_px=fy, center_x_px=cx, center_y_px=cy))
        return reply

    def GetPointCloud(self, request: camera_pb2.GetPointCloudRequest, context: grpc.ServicerContext) -> Any:
        self._enter("GetPointCloud", request.name, context)
        self._frames(request.name, context)  # NOT_FOUND for an unknown camera
        depth = self._parent.point_clouds.get(request.name)
        if depth is None:
            context.abort(grpc.StatusCode.UNKNOWN, f"camera {request.name!r} has no depth: cannot make a point cloud")
        return camera_pb2.GetPointCloudResponse(mime_type=depth.mime_type, point_cloud=depth.point_cloud)


def _rgba_to_image(data: bytes) -> PIL.Image.Image:
    width, height = struct.unpack(">II", data[4:12])
    return PIL.Image.frombytes("RGBA", (width, height), data[12:])


class _MLModel(_Base, mlmodel_pb2_grpc.MLModelServiceServicer):
    def _forward(self, method: str, request: Any, context: grpc.ServicerContext) -> Any:
        self._enter(method, request.name, context)
        handler = self._parent.mlmodel
        if handler is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"resource \"rdk:service:mlmodel/{request.name}\" not found")
        try:
            return handler(method, request)
        except HandlerError as exc:
            context.abort(exc.code, exc.details)

    def Infer(self, request: mlmodel_pb2.InferRequest, context: grpc.ServicerContext) -> Any:
        return self._forward("Infer", request, context)

    def Metadata(self, request: mlmodel_pb2.MetadataRequest, context: grpc.ServicerContext) -> Any:
        return self._forward("Metadata", request, context)


# --- routing client calls to a module ---------------------------------------------------------------------------------

def request_name(raw: bytes) -> str:
    """Field 1 of a serialized request: ``name``, the resource a call is for, in every resource API's requests
    ("" when absent). Read from the wire format, so any API's requests can be routed without their classes."""
    pos = 0
    try:
        while pos < len(raw):
            key, pos = _varint(raw, pos)
            number, wire = key >> 3, key & 7
            if wire == 0:
                pos = _varint(raw, pos)[1]
            elif wire == 1:
                pos += 8
            elif wire == 5:
                pos += 4
            elif wire == 2:
                length, pos = _varint(raw, pos)
                if number == 1:
                    return raw[pos:pos + length].decode("utf-8", "replace")
                pos += length
            else:
                return ""
    except IndexError:
        pass
    return ""


def _varint(raw: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = raw[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


_MLMODEL_SERVICE = "viam.service.mlmodel.v1.MLModelService"
_MLMODEL_REQUESTS: dict[str, Any] = {"Infer": mlmodel_pb2.InferRequest, "Metadata": mlmodel_pb2.MetadataRequest}


class _Router(grpc.GenericRpcHandler):  # type: ignore[misc]
    """Unary calls of the services in :attr:`FakeParent.routes`: to the module serving the named resource, bytes as
    they are; MLModelService calls for other names go to the parent's own mlmodel handler; others are NOT_FOUND
    with viam-server's message."""

    def __init__(self, parent: FakeParent, mlmodel: _MLModel) -> None:
        self._parent = parent
        self._mlmodel = mlmodel

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method: str = details.method
        service = method.lstrip("/").partition("/")[0]
        if service != _MLMODEL_SERVICE and service not in {s for s, _ in self._parent.routes}:
            return None
        return grpc.unary_unary_rpc_method_handler(lambda raw, context: self._call(method, service, raw, context))

    def _call(self, method: str, service: str, raw: bytes, context: grpc.ServicerContext) -> bytes:
        name = request_name(raw)
        target = self._parent.routes.get((service, name))
        if target is None:
            short = method.rsplit("/", 1)[1]
            if service == _MLMODEL_SERVICE and short in _MLMODEL_REQUESTS:
                reply = getattr(self._mlmodel, short)(_MLMODEL_REQUESTS[short].FromString(raw), context)
                return bytes(reply.SerializeToString())
            api = next((a for (s, _), (a, _c) in self._parent.routes.items() if s == service), service)
            context.abort(grpc.StatusCode.NOT_FOUND, f"resource \"{api}/{name}\" not found")
            raise AssertionError("context.abort raises")
        api, channel = target
        self._parent._enter_routed(method, name, context)
        remaining = context.time_remaining()
        call = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
        try:
            return bytes(call(raw, timeout=remaining if remaining and remaining < 1e6 else None))
        except grpc.RpcError as exc:
            context.abort(exc.code(), exc.details() or "")
        raise AssertionError("unreachable")  # context.abort raises


# --- the parent ------------------------------------------------------------------------------------------------------

class FakeParent:
    """A fake module parent on a Unix socket (``path``) or on 127.0.0.1 (``tcp=True``), started at construction."""

    def __init__(self, path: str | None = None, *, tcp: bool = False,
                 on_log: Callable[[common_pb2.LogEntry], None] | None = None) -> None:
        if (path is None) == (not tcp):
            raise ValueError("give a socket path, or tcp=True")
        self.tcp = tcp
        self.path = path
        self.port = 0
        self.state = _State()
        # name -> its frame, or the list of images GetImages returns (several sources, or none at all)
        self.cameras: dict[str, CameraValue] = {}
        self.point_clouds: dict[str, DepthData] = {}  # cameras (also in ``cameras``) that are depth cameras
        self.resource_names: list[common_pb2.ResourceName] = []
        self.old_server = False
        self.on_log = on_log  # also called with every accepted log entry
        self.mlmodel: MLModelHandler | None = None
        # (gRPC service, resource name) -> (API, channel to the module serving it); see route()
        self.routes: dict[tuple[str, str], tuple[str, grpc.Channel]] = {}
        self._server: grpc.Server | None = None
        self.start()

    @property
    def address(self) -> str:
        """What viam-server puts in ReadyRequest.parent_address: the socket path, or 127.0.0.1:port."""
        return f"127.0.0.1:{self.port}" if self.tcp else str(self.path)

    # --- server lifetime ---

    def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("already running")
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="fake-parent"),
                             options=CHANNEL_OPTIONS)
        robot_pb2_grpc.add_RobotServiceServicer_to_server(_Robot(self), server)
        camera_pb2_grpc.add_CameraServiceServicer_to_server(_Camera(self), server)
        # MLModelService through the router: a name routed to a module goes there, any other to self.mlmodel.
        server.add_generic_rpc_handlers((_Router(self, _MLModel(self)),))
        reflection.enable_server_reflection((
            robot_pb2.DESCRIPTOR.services_by_name["RobotService"].full_name,
            camera_pb2.DESCRIPTOR.services_by_name["CameraService"].full_name,
            mlmodel_pb2.DESCRIPTOR.services_by_name["MLModelService"].full_name,
            vision_pb2.DESCRIPTOR.services_by_name["VisionService"].full_name,
            reflection.SERVICE_NAME), server)
        if self.tcp:
            bound = server.add_insecure_port(f"127.0.0.1:{self.port}")
            if bound == 0:
                raise OSError(f"cannot listen on 127.0.0.1:{self.port}")
            self.port = bound
        else:
            assert self.path is not None
            if os.path.exists(self.path):
                os.unlink(self.path)
            if server.add_insecure_port(f"unix:{os.path.abspath(self.path)}") == 0:
                raise OSError(f"cannot listen on {self.path}")
        server.start()
        self._server = server

    def stop(self) -> None:
        """Stop serving (connections are closed; the socket file is removed), as when viam-server dies."""
        if self._server is None:
            return
        self._server.stop(0).wait(5)
        self._server = None
        if not self.tcp and self.path and os.path.exists(self.path):
            os.unlink(self.path)

    def restart(self) -> None:
        """Serve again on the same address, keeping cameras, recorded calls and logs."""
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self._server is not None

    # --- configuration ---

    def fault(self, method: str, code: grpc.StatusCode | None = None, *, details: str = "injected fault",
              delay: float = 0.0, times: int | None = None) -> None:
        """Make calls of ``method`` ("GetImages", "Infer", "Log", ...) slow and/or fail; see :class:`Fault`."""
        with self.state.lock:
            self.state.faults[method] = Fault(code, details, delay, times)

    def clear_faults(self) -> None:
        with self.state.lock:
            self.state.faults.clear()

    def route(self, full_name: str, proto_service: str, channel: grpc.Channel) -> None:
        """Serve the resource ``full_name`` (``api/name``) to clients by forwarding its ``proto_service`` calls (e.g.
        ``viam.service.vision.v1.VisionService``) to the module on ``channel``, and list it in ResourceNames."""
        api, name = full_name.split("/", 1)
        self.routes[(proto_service, name)] = (api, channel)
        if not any(f"{r.namespace}:{r.type}:{r.subtype}/{r.name}" == full_name for r in self.resource_names):
            self.add_resources([full_name])

    def _enter_routed(self, method: str, name: str, context: grpc.ServicerContext) -> None:
        _Base(self)._enter(method.rsplit("/", 1)[1], name, context)

    def add_resources(self, full_names: list[str]) -> None:
        """List resources (``api/name``) in ResourceNames, as viam-server lists every resource of the robot."""
        for full in full_names:
            api, name = full.split("/", 1)
            namespace, kind, subtype = api.split(":")
            self.resource_names.append(common_pb2.ResourceName(namespace=namespace, type=kind, subtype=subtype, name=name))

    # --- what happened ---

    def calls(self, method: str | None = None) -> list[Call]:
        with self.state.lock:
            return [c for c in self.state.calls if method is None or c.method == method]

    def logs(self) -> list[common_pb2.LogEntry]:
        with self.state.lock:
            return list(self.state.logs)

    def rejected_logs(self) -> list[tuple[str, robot_pb2.LogRequest]]:
        with self.state.lock:
            return list(self.state.rejected_logs)

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        """Poll ``predicate`` until true or ``timeout``; returns its last value."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                return predicate()
            time.sleep(0.05)
        return True

    def close(self) -> None:
        self.stop()
