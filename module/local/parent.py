"""The parent the module talks to, standing in for viam-server: RobotService (ResourceNames, Log) and CameraService
(GetImages, GetImage, GetProperties) with cameras backed by image files, on a Unix socket."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Mapping
from concurrent import futures

import grpc

from module.gen.common.v1 import common_pb2
from module.gen.component.camera.v1 import camera_pb2, camera_pb2_grpc
from module.gen.robot.v1 import robot_pb2, robot_pb2_grpc
from module.local.frames import FrameSource
from module.resource_names import CAMERA_API, ResourceName
from module.server import CHANNEL_OPTIONS

LogSink = Callable[[common_pb2.LogEntry], None]


class _Robot(robot_pb2_grpc.RobotServiceServicer):
    def __init__(self, parent: Parent) -> None:
        self._parent = parent

    def ResourceNames(self, request: robot_pb2.ResourceNamesRequest,
                      context: grpc.ServicerContext) -> robot_pb2.ResourceNamesResponse:
        names = [ResourceName.parse(n) for n in self._parent.resource_names()]
        return robot_pb2.ResourceNamesResponse(resources=[
            common_pb2.ResourceName(namespace=n.api.namespace, type=n.api.type, subtype=n.api.subtype, name=n.name)
            for n in names])

    def Log(self, request: robot_pb2.LogRequest, context: grpc.ServicerContext) -> robot_pb2.LogResponse:
        for entry in request.logs:
            self._parent.on_log(entry)
        return robot_pb2.LogResponse()


class _Camera(camera_pb2_grpc.CameraServiceServicer):
    def __init__(self, cameras: Mapping[str, FrameSource]) -> None:
        self._cameras = cameras

    def _source(self, name: str, context: grpc.ServicerContext) -> FrameSource:
        source = self._cameras.get(name.rsplit(":", 1)[-1])
        if source is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"resource {CAMERA_API}/{name} not found; cameras: "
                          f"{', '.join(self._cameras) or 'none'}")
        return source  # type: ignore[return-value]

    def GetImages(self, request: camera_pb2.GetImagesRequest,
                  context: grpc.ServicerContext) -> camera_pb2.GetImagesResponse:
        frame = self._source(request.name, context).read()
        fmt = {"image/jpeg": camera_pb2.FORMAT_JPEG, "image/png": camera_pb2.FORMAT_PNG}[frame.mime_type]
        return camera_pb2.GetImagesResponse(images=[camera_pb2.Image(
            source_name=request.name, format=fmt, mime_type=frame.mime_type, image=frame.data)])

    def GetImage(self, request: camera_pb2.GetImageRequest,
                 context: grpc.ServicerContext) -> camera_pb2.GetImageResponse:
        frame = self._source(request.name, context).read()
        return camera_pb2.GetImageResponse(mime_type=frame.mime_type, image=frame.data)

    def GetProperties(self, request: camera_pb2.GetPropertiesRequest,
                      context: grpc.ServicerContext) -> camera_pb2.GetPropertiesResponse:
        self._source(request.name, context)
        return camera_pb2.GetPropertiesResponse(supports_pcd=False, mime_types=["image/jpeg", "image/png"])


class Parent:
    """A gRPC server on ``address`` (a Unix socket path) serving the cameras; module logs go to ``on_log``."""

    def __init__(self, address: str, cameras: Mapping[str, FrameSource], on_log: LogSink) -> None:
        self.address = address
        self.cameras = dict(cameras)
        self.on_log = on_log
        self._resources: list[str] = [f"{CAMERA_API}/{name}" for name in self.cameras]
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="parent"),
                                   options=CHANNEL_OPTIONS)
        robot_pb2_grpc.add_RobotServiceServicer_to_server(_Robot(self), self._server)
        camera_pb2_grpc.add_CameraServiceServicer_to_server(_Camera(self.cameras), self._server)
        if self._server.add_insecure_port(f"unix:{os.path.abspath(address)}") == 0:
            raise OSError(f"cannot listen on {address}")

    def add_resources(self, full_names: Iterable[str]) -> None:
        """Resources the module serves, listed by ResourceNames like viam-server lists every resource."""
        self._resources.extend(full_names)

    def resource_names(self) -> list[str]:
        return list(self._resources)

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop(0.5).wait(1.0)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.address)
