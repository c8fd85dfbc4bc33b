"""The connection to the parent (viam-server): camera frames, point clouds and properties, and logs; other APIs make
stubs on ``channel``.

Plain gRPC over the parent's Unix socket (or 127.0.0.1:port in TCP mode): no TLS, no auth, no session.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from typing import Final

import grpc

from module.call_state import NO_DEADLINE_S
from module.errors import DeadlineError, FailedPreconditionError, InvalidInputError, ModuleError, NotFoundError, UnavailableError
from module.gen.common.v1 import common_pb2
from module.gen.component.camera.v1 import camera_pb2, camera_pb2_grpc
from module.gen.robot.v1 import robot_pb2, robot_pb2_grpc
from module.server import CHANNEL_OPTIONS

_LOG = logging.getLogger(__name__)
DEFAULT_TIMEOUT: Final = 10.0
# The module's own answer must reach the caller before the caller's deadline does: a parent call gets the caller's
# remaining time less this share of it (at least _MARGIN_MIN_S, at most _MARGIN_MAX_S).
_MARGIN_SHARE: Final = 0.1
_MARGIN_MIN_S: Final = 0.05
_MARGIN_MAX_S: Final = 0.5
_OLD_CHANNEL_GRACE_S: Final = 5.0  # calls already on a replaced channel may finish within this
_FORMAT_MIME: Final = {camera_pb2.FORMAT_JPEG: "image/jpeg", camera_pb2.FORMAT_PNG: "image/png",
                       camera_pb2.FORMAT_RAW_RGBA: "image/vnd.viam.rgba", camera_pb2.FORMAT_RAW_DEPTH: "image/vnd.viam.dep"}
_ERRORS: Final[dict[grpc.StatusCode, type[ModuleError]]] = {
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidInputError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
}

# Codes that say the call did not reach the camera (or the caller gave up), rather than what the camera answered.
_TRANSPORT_CODES: Final = frozenset({grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.NOT_FOUND,
                                     grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED})


@dataclass(frozen=True, slots=True)
class Frame:
    """One camera image as the parent returned it."""

    data: bytes
    mime_type: str
    source_name: str


@dataclass(frozen=True, slots=True)
class PointCloudBytes:
    """A camera's point cloud as the parent returned it (PCD for Viam cameras)."""

    data: bytes
    mime_type: str


@dataclass(frozen=True, slots=True)
class CameraProperties:
    """What GetObjectPointClouds needs from camera GetProperties. ``intrinsics`` is (width_px, height_px,
    focal_x_px, focal_y_px, center_x_px, center_y_px), or None when the camera reports none (or all zeros)."""

    supports_pcd: bool
    intrinsics: tuple[int, int, float, float, float, float] | None


def call_timeout(remaining: float | None) -> float:
    """The time a call to the parent may take: slightly less than the caller's remaining time, at most the module's
    own DEFAULT_TIMEOUT.

    "Slightly less" so that the module's own DEADLINE_EXCEEDED, which names the camera, reaches the caller before
    grpc's bare "Deadline Exceeded" does. A call without a deadline reports ``time_remaining()`` of about 9.2e18 s
    (2**63 ns), not None; passed on as a timeout, grpc turns that into an immediate DEADLINE_EXCEEDED. Those calls
    get DEFAULT_TIMEOUT instead.
    """
    if remaining is None or remaining > NO_DEADLINE_S:
        return DEFAULT_TIMEOUT
    margin = min(max(remaining * _MARGIN_SHARE, _MARGIN_MIN_S), _MARGIN_MAX_S)
    return min(max(remaining - margin, 0.001), DEFAULT_TIMEOUT)  # already expired: fail at once, not the default


def _seconds(value: float) -> str:
    return f"{value:.0f}" if value >= 10 else f"{value:.2g}"


def _details(exc: grpc.RpcError) -> str:
    return str(exc.details()) if hasattr(exc, "details") and exc.details() else ""


def _code(exc: grpc.RpcError) -> grpc.StatusCode:
    return exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN


def translate(exc: grpc.RpcError, what: str) -> ModuleError:
    """The typed error for a failed call to the parent (UNAVAILABLE unless the parent's code says otherwise)."""
    code = _code(exc)
    error_class = _ERRORS.get(code, UnavailableError)
    return error_class(f"{what} through the parent failed: {code.name}: {_details(exc) or 'no details'}")


def _camera_error(exc: grpc.RpcError, camera: str, timeout: float) -> ModuleError:
    """A failed camera read: a time-out names the camera and the time it had; other codes keep the parent's words."""
    if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
        details = _details(exc)
        said = "" if details in ("", "Deadline Exceeded") else f" (the parent said: {details})"
        return DeadlineError(f"camera {camera!r} did not answer within {_seconds(timeout)} s{said}")
    return translate(exc, f"reading camera {camera!r}")


class ParentClient:
    """A channel to viam-server's module socket, with the calls this module makes.

    :meth:`reconnect` replaces the channel: after viam-server restarted on the same socket, grpc's reconnect
    backoff (growing with the outage, 4-6 s after a short one) would otherwise keep failing calls with
    UNAVAILABLE long after the parent is back.
    """

    def __init__(self, address: str, *, tcp: bool = False) -> None:
        self._tcp = tcp
        self._lock = threading.Lock()
        self._properties: dict[str, CameraProperties] = {}  # per camera; dropped by forget_camera after a failure
        self._properties_lock = threading.Lock()
        self._set_address(address)
        self._connect()

    def _set_address(self, address: str) -> None:
        self.address = address
        tcp = self._tcp or address.startswith(("unix:", "dns:"))
        self._target = address if tcp else f"unix:{os.path.abspath(address)}"

    def _connect(self) -> None:
        # No keepalive pings: the parent sends GOAWAY to clients that ping more often than every 5 s. A local
        # subchannel pool: grpc otherwise shares connections (and their backoff state) between channels to the same
        # address, and a new channel would inherit the old one's backoff.
        channel = grpc.insecure_channel(self._target, options=[*CHANNEL_OPTIONS, ("grpc.use_local_subchannel_pool", 1)])
        # Stubs are replaced together with the channel; each call reads them once, so it uses one channel throughout.
        self._healthy = True
        self._channel = channel
        self._robot = robot_pb2_grpc.RobotServiceStub(channel)
        self._camera = camera_pb2_grpc.CameraServiceStub(channel)

    def healthy(self) -> bool:
        """No call on the current channel has failed to reach the parent since the last one that did reach it."""
        return self._healthy

    def _outcome(self, exc: grpc.RpcError | None) -> None:
        """Note whether a call reached the parent (UNAVAILABLE: it did not, and grpc starts its backoff)."""
        self._healthy = exc is None or exc.code() != grpc.StatusCode.UNAVAILABLE

    def reconnect(self, address: str | None = None) -> None:
        """Dial the parent again now (at ``address`` if it moved), with no backoff; calls already on the old channel
        get a grace period."""
        with self._lock:
            old = self._channel
            if address:
                self._set_address(address)
            self._connect()
        timer = threading.Timer(_OLD_CHANNEL_GRACE_S, old.close)
        timer.daemon = True
        timer.start()

    @property
    def channel(self) -> grpc.Channel:
        """The current channel (replaced by :meth:`reconnect`: make stubs per call, or check it is still the same)."""
        return self._channel

    def check(self, timeout: float = 2.0) -> None:
        """Raise UnavailableError unless the parent answers ResourceNames."""
        try:
            self._robot.ResourceNames(robot_pb2.ResourceNamesRequest(), timeout=timeout)
        except grpc.RpcError as exc:
            self._outcome(exc)
            raise translate(exc, f"reaching the parent at {self.address}") from None

    def get_frame(self, camera: str, timeout: float | None = None) -> Frame:
        """The first image of ``camera`` (GetImages; GetImage on servers that predate it).

        ``timeout`` is the caller's remaining time (``context.time_remaining()``), or None: DEFAULT_TIMEOUT.
        """
        timeout = call_timeout(timeout)
        try:
            reply = self._camera.GetImages(camera_pb2.GetImagesRequest(name=camera), timeout=timeout)
        except grpc.RpcError as exc:
            self._outcome(exc)
            if exc.code() != grpc.StatusCode.UNIMPLEMENTED:
                raise _camera_error(exc, camera, timeout) from None
            return self._get_image_legacy(camera, timeout)
        if not reply.images:
            raise UnavailableError(f"camera {camera!r} returned no images")
        image = reply.images[0]
        mime = image.mime_type or _FORMAT_MIME.get(image.format, "")
        return Frame(data=image.image, mime_type=mime, source_name=image.source_name or camera)

    def _get_image_legacy(self, camera: str, timeout: float) -> Frame:
        try:
            reply = self._camera.GetImage(camera_pb2.GetImageRequest(name=camera, mime_type="image/jpeg"), timeout=timeout)
        except grpc.RpcError as exc:
            raise _camera_error(exc, camera, timeout) from None
        return Frame(data=reply.image, mime_type=reply.mime_type, source_name=camera)

    def get_point_cloud(self, camera: str, timeout: float | None = None) -> PointCloudBytes:
        """``camera``'s point cloud (GetPointCloud, asking for PCD). ``timeout`` as for :meth:`get_frame`."""
        request = camera_pb2.GetPointCloudRequest(name=camera, mime_type="pointcloud/pcd")
        timeout = call_timeout(timeout)
        try:
            reply = self._camera.GetPointCloud(request, timeout=timeout)
        except grpc.RpcError as exc:
            self._outcome(exc)
            code = _code(exc)
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise _camera_error(exc, camera, timeout) from None
            if code in _TRANSPORT_CODES:
                raise translate(exc, f"reading the point cloud of camera {camera!r}") from None
            # Anything else is the camera's answer: it has no point cloud to give (UNIMPLEMENTED, UNKNOWN, ...).
            raise FailedPreconditionError(f"camera {camera!r} gives no point cloud: GetPointCloud failed with "
                                          f"{code.name}: {_details(exc) or 'no details'}") from None
        return PointCloudBytes(data=reply.point_cloud, mime_type=reply.mime_type)

    def camera_properties(self, camera: str, timeout: float | None = None) -> CameraProperties:
        """``camera``'s GetProperties, cached per camera until :meth:`forget_camera` (a camera's intrinsics do not
        change while it is configured; a failed call drops the entry so a reconfigured camera is asked again)."""
        with self._properties_lock:
            cached = self._properties.get(camera)
        if cached is not None:
            return cached
        try:
            reply = self._camera.GetProperties(camera_pb2.GetPropertiesRequest(name=camera), timeout=call_timeout(timeout))
        except grpc.RpcError as exc:
            raise translate(exc, f"reading the properties of camera {camera!r}") from None
        p = reply.intrinsic_parameters
        given = reply.HasField("intrinsic_parameters") and any(
            (p.width_px, p.height_px, p.focal_x_px, p.focal_y_px, p.center_x_px, p.center_y_px))
        properties = CameraProperties(reply.supports_pcd, (p.width_px, p.height_px, p.focal_x_px, p.focal_y_px,
                                                           p.center_x_px, p.center_y_px) if given else None)
        with self._properties_lock:
            self._properties[camera] = properties
        return properties

    def forget_camera(self, camera: str) -> None:
        """Drop ``camera``'s cached properties: the next call asks the camera again."""
        with self._properties_lock:
            self._properties.pop(camera, None)

    def log(self, entry: common_pb2.LogEntry, timeout: float = 2.0) -> None:
        """Send one log entry (the parent rejects batches)."""
        try:
            self._robot.Log(robot_pb2.LogRequest(logs=[entry]), timeout=timeout)
        except grpc.RpcError as exc:
            self._outcome(exc)
            raise

    def close(self) -> None:
        self._channel.close()
