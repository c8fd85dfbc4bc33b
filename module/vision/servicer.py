"""viam.service.vision.v1.VisionService: a thin adapter from the wire to module/vision/service.py."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import grpc

from module.errors import InvalidInputError, UnsupportedError
from module.gen.common.v1 import common_pb2
from module.gen.component.camera.v1 import camera_pb2
from module.gen.service.vision.v1 import vision_pb2 as pb
from module.gen.service.vision.v1 import vision_pb2_grpc
from module.resource.manager import ResourceManager
from module.resource.names import VISION_API
from module.resource.structs import dict_to_struct, struct_to_dict
from module.vision.classifications import Classification
from module.vision.detections import Detection
from module.vision.objects3d import Object3D
from module.vision.pcd import MIME_PCD, write_pcd
from module.vision.service import VisionService


def detection_to_proto(d: Detection) -> pb.Detection:
    # Every coordinate is set explicitly (proto3 optional): viam-server rejects detections missing any of them.
    return pb.Detection(x_min=d.x_min, y_min=d.y_min, x_max=d.x_max, y_max=d.y_max, confidence=d.confidence,
                        class_name=d.class_name, x_min_normalized=d.x_min_normalized,
                        y_min_normalized=d.y_min_normalized, x_max_normalized=d.x_max_normalized,
                        y_max_normalized=d.y_max_normalized)


def object_to_proto(obj: Object3D, frame: str) -> common_pb2.PointCloudObject:
    """The object's points as a binary PCD (metres) and its box (millimetres, identity orientation) in ``frame``."""
    (cx, cy, cz), (dx, dy, dz) = obj.center_mm, obj.dims_mm
    box = common_pb2.Geometry(center=common_pb2.Pose(x=cx, y=cy, z=cz, o_z=1.0),
                              box=common_pb2.RectangularPrism(dims_mm=common_pb2.Vector3(x=dx, y=dy, z=dz)),
                              label=obj.label)
    return common_pb2.PointCloudObject(point_cloud=write_pcd(obj.points.xyz, obj.points.rgb),
                                       geometries=common_pb2.GeometriesInFrame(reference_frame=frame, geometries=[box]))


def classification_to_proto(c: Classification) -> pb.Classification:
    return pb.Classification(class_name=c.class_name, confidence=c.confidence)


class VisionServicer(vision_pb2_grpc.VisionServiceServicer):
    def __init__(self, resources: ResourceManager) -> None:
        self._resources = resources

    def _service(self, name: str) -> VisionService:
        return self._resources.get(VISION_API, name)  # type: ignore[return-value]

    def GetDetections(self, request: pb.GetDetectionsRequest, context: grpc.ServicerContext) -> pb.GetDetectionsResponse:
        detections = self._service(request.name).detections(request.image, request.mime_type)
        return pb.GetDetectionsResponse(detections=[detection_to_proto(d) for d in detections])

    def GetDetectionsFromCamera(self, request: pb.GetDetectionsFromCameraRequest,
                                context: grpc.ServicerContext) -> pb.GetDetectionsFromCameraResponse:
        detections = self._service(request.name).detections_from_camera(request.camera_name, context.time_remaining())
        return pb.GetDetectionsFromCameraResponse(detections=[detection_to_proto(d) for d in detections])

    def GetClassifications(self, request: pb.GetClassificationsRequest,
                           context: grpc.ServicerContext) -> pb.GetClassificationsResponse:
        found = self._service(request.name).classifications(request.image, request.mime_type, request.n)
        return pb.GetClassificationsResponse(classifications=[classification_to_proto(c) for c in found])

    def GetClassificationsFromCamera(self, request: pb.GetClassificationsFromCameraRequest,
                                     context: grpc.ServicerContext) -> pb.GetClassificationsFromCameraResponse:
        found = self._service(request.name).classifications_from_camera(request.camera_name, request.n,
                                                                        context.time_remaining())
        return pb.GetClassificationsFromCameraResponse(classifications=[classification_to_proto(c) for c in found])

    def GetObjectPointClouds(self, request: pb.GetObjectPointCloudsRequest,
                             context: grpc.ServicerContext) -> pb.GetObjectPointCloudsResponse:
        service = self._service(request.name)
        if request.mime_type not in ("", MIME_PCD):
            raise InvalidInputError(f"GetObjectPointClouds answers in {MIME_PCD}, not {request.mime_type!r}")
        found = service.object_point_clouds(request.camera_name, context.time_remaining())
        return pb.GetObjectPointCloudsResponse(mime_type=MIME_PCD,
                                               objects=[object_to_proto(o, found.camera) for o in found.objects])

    def GetDetections3D(self, request: pb.GetDetections3DRequest,
                        context: grpc.ServicerContext) -> pb.GetDetections3DResponse:
        self._service(request.name)
        raise UnsupportedError("GetDetections3D is not supported: this vision service works on 2D images")

    def GetProperties(self, request: pb.GetPropertiesRequest, context: grpc.ServicerContext) -> pb.GetPropertiesResponse:
        props = self._service(request.name).properties()
        return pb.GetPropertiesResponse(classifications_supported=props.classifications_supported,
                                        detections_supported=props.detections_supported,
                                        object_point_clouds_supported=props.object_point_clouds_supported,
                                        detections_3d_supported=False,
                                        default_camera=props.default_camera or None)

    def CaptureAllFromCamera(self, request: pb.CaptureAllFromCameraRequest,
                             context: grpc.ServicerContext) -> pb.CaptureAllFromCameraResponse:
        capture = self._service(request.name).capture_all(
            request.camera_name, want_detections=request.return_detections,
            want_classifications=request.return_classifications, timeout=context.time_remaining(),
            want_objects=request.return_object_point_clouds)
        reply = pb.CaptureAllFromCameraResponse()
        if request.return_image:
            frame = capture.frame
            reply.image.CopyFrom(camera_pb2.Image(source_name=request.camera_name or frame.source_name,
                                                  mime_type=frame.mime_type, image=frame.data))
        reply.detections.extend(detection_to_proto(d) for d in capture.detections or ())
        reply.classifications.extend(classification_to_proto(c) for c in capture.classifications or ())
        if capture.objects is not None:
            reply.objects.extend(object_to_proto(o, capture.objects.camera) for o in capture.objects.objects)
        return reply

    def DoCommand(self, request: common_pb2.DoCommandRequest, context: grpc.ServicerContext) -> common_pb2.DoCommandResponse:
        result = self._service(request.name).do_command(struct_to_dict(request.command))
        return common_pb2.DoCommandResponse(result=dict_to_struct(_without_nulls(result)))

    def GetStatus(self, request: common_pb2.GetStatusRequest, context: grpc.ServicerContext) -> common_pb2.GetStatusResponse:
        return common_pb2.GetStatusResponse(result=dict_to_struct(_without_nulls(self._service(request.name).status())))


def _without_nulls(value: Any) -> Any:
    """Results without None-valued keys: the Python SDK's struct_to_dict reads a Struct null as 0 (the NullValue
    enum), so an unset ``max_detections`` would show up there as 0; an absent key reads as unset everywhere."""
    if isinstance(value, Mapping):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_without_nulls(v) for v in value]
    return value
