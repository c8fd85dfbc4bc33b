"""The generated code matches protos/, and protos/ matches the official Viam API on the wire.

The expected numbers below are transcribed from the official protos (viamrobotics/api, through
../shared/docs/viam-module-protocol.md); a renumbered or retyped field would silently break viam-server.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import FieldDescriptor as F

import module.gen.module.v1.module_pb2  # noqa: F401  (registers every file in the default pool)
import module.gen.service.mlmodel.v1.mlmodel_pb2  # noqa: F401
import module.gen.service.vision.v1.vision_pb2  # noqa: F401
from devkit.standin.launcher import REPO

EXPECTED = {
    # message: {field: (number, type, label_or_presence)}
    "viam.module.v1.ReadyRequest": {"parent_address": (1, F.TYPE_STRING), "webrtc_offer": (2, F.TYPE_STRING),
                                    "raw_parent_address": (3, F.TYPE_STRING)},
    "viam.module.v1.ReadyResponse": {"ready": (1, F.TYPE_BOOL), "handlermap": (2, F.TYPE_MESSAGE),
                                     "webrtc_answer": (3, F.TYPE_STRING)},
    "viam.module.v1.HandlerDefinition": {"subtype": (1, F.TYPE_MESSAGE), "models": (2, F.TYPE_STRING)},
    "viam.module.v1.AddResourceRequest": {"config": (1, F.TYPE_MESSAGE), "dependencies": (2, F.TYPE_STRING)},
    "viam.module.v1.RemoveResourceRequest": {"name": (1, F.TYPE_STRING)},
    "viam.module.v1.ValidateConfigResponse": {"dependencies": (1, F.TYPE_STRING),
                                              "optional_dependencies": (2, F.TYPE_STRING)},
    "viam.robot.v1.ResourceRPCSubtype": {"subtype": (1, F.TYPE_MESSAGE), "proto_service": (2, F.TYPE_STRING)},
    "viam.app.v1.ComponentConfig": {"name": (1, F.TYPE_STRING), "namespace": (2, F.TYPE_STRING),
                                    "type": (3, F.TYPE_STRING), "model": (4, F.TYPE_STRING),
                                    "depends_on": (6, F.TYPE_STRING), "service_configs": (7, F.TYPE_MESSAGE),
                                    "attributes": (8, F.TYPE_MESSAGE), "api": (9, F.TYPE_STRING),
                                    "log_configuration": (10, F.TYPE_MESSAGE)},
    "viam.common.v1.LogEntry": {"host": (1, F.TYPE_STRING), "level": (2, F.TYPE_STRING), "time": (3, F.TYPE_MESSAGE),
                                "logger_name": (4, F.TYPE_STRING), "message": (5, F.TYPE_STRING),
                                "caller": (6, F.TYPE_MESSAGE), "stack": (7, F.TYPE_STRING),
                                "fields": (8, F.TYPE_MESSAGE)},
    "viam.service.mlmodel.v1.InferRequest": {"name": (1, F.TYPE_STRING), "input_tensors": (3, F.TYPE_MESSAGE),
                                             "extra": (99, F.TYPE_MESSAGE)},
    "viam.service.mlmodel.v1.InferResponse": {"output_tensors": (3, F.TYPE_MESSAGE)},
    "viam.service.mlmodel.v1.TensorInfo": {"name": (1, F.TYPE_STRING), "description": (2, F.TYPE_STRING),
                                           "data_type": (3, F.TYPE_STRING), "shape": (4, F.TYPE_INT32),
                                           "associated_files": (5, F.TYPE_MESSAGE), "extra": (99, F.TYPE_MESSAGE)},
    "viam.service.mlmodel.v1.FlatTensor": {
        "shape": (1, F.TYPE_FIXED64), "int8_tensor": (2, F.TYPE_MESSAGE), "uint8_tensor": (3, F.TYPE_MESSAGE),
        "int16_tensor": (4, F.TYPE_MESSAGE), "uint16_tensor": (5, F.TYPE_MESSAGE), "int32_tensor": (6, F.TYPE_MESSAGE),
        "uint32_tensor": (7, F.TYPE_MESSAGE), "int64_tensor": (8, F.TYPE_MESSAGE), "uint64_tensor": (9, F.TYPE_MESSAGE),
        "float_tensor": (10, F.TYPE_MESSAGE), "double_tensor": (11, F.TYPE_MESSAGE)},
    "viam.service.mlmodel.v1.FlatTensorDataInt16": {"data": (1, F.TYPE_FIXED32)},
    "viam.service.mlmodel.v1.FlatTensorDataUInt16": {"data": (1, F.TYPE_FIXED32)},
    "viam.service.mlmodel.v1.FlatTensorDataInt32": {"data": (1, F.TYPE_SFIXED32)},
    "viam.service.mlmodel.v1.FlatTensorDataInt64": {"data": (1, F.TYPE_SFIXED64)},
    "viam.service.mlmodel.v1.FlatTensorDataUInt64": {"data": (1, F.TYPE_FIXED64)},
    "viam.service.mlmodel.v1.FlatTensorDataFloat": {"data": (1, F.TYPE_FLOAT)},
    "viam.service.mlmodel.v1.FlatTensorDataDouble": {"data": (1, F.TYPE_DOUBLE)},
    "viam.service.vision.v1.Detection": {
        "x_min": (1, F.TYPE_INT64), "y_min": (2, F.TYPE_INT64), "x_max": (3, F.TYPE_INT64), "y_max": (4, F.TYPE_INT64),
        "confidence": (5, F.TYPE_DOUBLE), "class_name": (6, F.TYPE_STRING), "x_min_normalized": (7, F.TYPE_DOUBLE),
        "y_min_normalized": (8, F.TYPE_DOUBLE), "x_max_normalized": (9, F.TYPE_DOUBLE),
        "y_max_normalized": (10, F.TYPE_DOUBLE)},
    "viam.service.vision.v1.GetDetectionsRequest": {"name": (1, F.TYPE_STRING), "image": (2, F.TYPE_BYTES),
                                                    "width": (3, F.TYPE_INT64), "height": (4, F.TYPE_INT64),
                                                    "mime_type": (5, F.TYPE_STRING), "extra": (99, F.TYPE_MESSAGE)},
    "viam.service.vision.v1.GetClassificationsRequest": {"width": (3, F.TYPE_INT32), "height": (4, F.TYPE_INT32),
                                                         "n": (6, F.TYPE_INT32)},
    "viam.service.vision.v1.GetPropertiesResponse": {
        "classifications_supported": (1, F.TYPE_BOOL), "detections_supported": (2, F.TYPE_BOOL),
        "object_point_clouds_supported": (3, F.TYPE_BOOL), "default_camera": (4, F.TYPE_STRING),
        "detections_3d_supported": (5, F.TYPE_BOOL)},
    "viam.service.vision.v1.CaptureAllFromCameraRequest": {
        "camera_name": (2, F.TYPE_STRING), "return_image": (3, F.TYPE_BOOL), "return_classifications": (4, F.TYPE_BOOL),
        "return_detections": (5, F.TYPE_BOOL), "return_object_point_clouds": (6, F.TYPE_BOOL),
        "return_detections_3d": (7, F.TYPE_BOOL)},
    "viam.service.vision.v1.CaptureAllFromCameraResponse": {
        "image": (1, F.TYPE_MESSAGE), "detections": (2, F.TYPE_MESSAGE), "classifications": (3, F.TYPE_MESSAGE),
        "objects": (4, F.TYPE_MESSAGE), "detections_3d": (5, F.TYPE_MESSAGE), "extra": (99, F.TYPE_MESSAGE)},
    "viam.component.camera.v1.GetImagesResponse": {"images": (1, F.TYPE_MESSAGE), "response_metadata": (84260, F.TYPE_MESSAGE)},
    "viam.component.camera.v1.Image": {"source_name": (1, F.TYPE_STRING), "format": (2, F.TYPE_ENUM),
                                       "image": (3, F.TYPE_BYTES), "mime_type": (4, F.TYPE_STRING),
                                       "annotations": (5, F.TYPE_MESSAGE)},
    # GetObjectPointClouds: the depth camera's point cloud and intrinsics, and the objects it returns.
    "viam.component.camera.v1.GetPointCloudRequest": {"name": (1, F.TYPE_STRING), "mime_type": (2, F.TYPE_STRING),
                                                      "extra": (99, F.TYPE_MESSAGE)},
    "viam.component.camera.v1.GetPointCloudResponse": {"mime_type": (1, F.TYPE_STRING), "point_cloud": (2, F.TYPE_BYTES)},
    "viam.component.camera.v1.GetPropertiesResponse": {"supports_pcd": (1, F.TYPE_BOOL),
                                                       "intrinsic_parameters": (2, F.TYPE_MESSAGE)},
    "viam.component.camera.v1.IntrinsicParameters": {
        "width_px": (1, F.TYPE_UINT32), "height_px": (2, F.TYPE_UINT32), "focal_x_px": (3, F.TYPE_DOUBLE),
        "focal_y_px": (4, F.TYPE_DOUBLE), "center_x_px": (5, F.TYPE_DOUBLE), "center_y_px": (6, F.TYPE_DOUBLE)},
    "viam.service.vision.v1.GetObjectPointCloudsRequest": {"name": (1, F.TYPE_STRING), "camera_name": (2, F.TYPE_STRING),
                                                           "mime_type": (3, F.TYPE_STRING)},
    "viam.service.vision.v1.GetObjectPointCloudsResponse": {"mime_type": (1, F.TYPE_STRING), "objects": (2, F.TYPE_MESSAGE)},
    "viam.common.v1.PointCloudObject": {"point_cloud": (1, F.TYPE_BYTES), "geometries": (2, F.TYPE_MESSAGE)},
    "viam.common.v1.GeometriesInFrame": {"reference_frame": (1, F.TYPE_STRING), "geometries": (2, F.TYPE_MESSAGE)},
    "viam.common.v1.Geometry": {"center": (1, F.TYPE_MESSAGE), "box": (3, F.TYPE_MESSAGE), "label": (4, F.TYPE_STRING)},
    "viam.common.v1.RectangularPrism": {"dims_mm": (1, F.TYPE_MESSAGE)},
    "viam.common.v1.Pose": {"x": (1, F.TYPE_DOUBLE), "y": (2, F.TYPE_DOUBLE), "z": (3, F.TYPE_DOUBLE),
                            "o_x": (4, F.TYPE_DOUBLE), "o_y": (5, F.TYPE_DOUBLE), "o_z": (6, F.TYPE_DOUBLE),
                            "theta": (7, F.TYPE_DOUBLE)},
}
OPTIONAL = [("viam.service.vision.v1.Detection", f) for f in
            ("x_min", "y_min", "x_max", "y_max", "x_min_normalized", "y_min_normalized", "x_max_normalized", "y_max_normalized")]
OPTIONAL += [("viam.service.vision.v1.GetPropertiesResponse", "default_camera")]
FILES = {"module/v1/module.proto", "app/v1/robot.proto", "robot/v1/robot.proto", "common/v1/common.proto",
         "service/mlmodel/v1/mlmodel.proto", "service/vision/v1/vision.proto", "component/camera/v1/camera.proto",
         "app/data/v1/data.proto"}
SERVICES = {"viam.module.v1.ModuleService": {"AddResource", "ReconfigureResource", "RemoveResource", "Ready", "ValidateConfig"},
            "viam.service.mlmodel.v1.MLModelService": {"Infer", "Metadata", "GetStatus"},
            "viam.service.vision.v1.VisionService": {
                "GetDetectionsFromCamera", "GetDetections", "GetClassificationsFromCamera", "GetClassifications",
                "GetObjectPointClouds", "GetProperties", "CaptureAllFromCamera", "DoCommand", "GetStatus", "GetDetections3D"}}


@pytest.mark.parametrize("message", sorted(EXPECTED))
def test_field_numbers_and_types_match_the_official_api(message: str) -> None:
    descriptor = descriptor_pool.Default().FindMessageTypeByName(message)
    for name, (number, kind) in EXPECTED[message].items():
        field = descriptor.fields_by_name[name]
        assert (field.number, field.type) == (number, kind), f"{message}.{name}"


@pytest.mark.parametrize(("message", "field"), OPTIONAL)
def test_proto3_optional_fields_track_presence(message: str, field: str) -> None:
    assert descriptor_pool.Default().FindMessageTypeByName(message).fields_by_name[field].has_presence


@pytest.mark.parametrize("path", sorted(FILES))
def test_official_file_paths(path: str) -> None:
    assert descriptor_pool.Default().FindFileByName(path).name == path


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_service_methods(service: str) -> None:
    methods = {m.name for m in descriptor_pool.Default().FindServiceByName(service).methods}
    assert methods == SERVICES[service]


def test_int16_tensors_are_not_packed_two_per_element() -> None:
    from module.gen.service.mlmodel.v1 import mlmodel_pb2 as pb

    # Viam's proto comment says two per element; RDK and the Python SDK put one value in each fixed32.
    message = pb.FlatTensorDataInt16(data=[1, 0xFFFF])
    assert message.SerializeToString() == b"\x0a\x08" + (1).to_bytes(4, "little") + (0xFFFF).to_bytes(4, "little")


def test_generated_code_matches_protos() -> None:
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "gen_protos.py"), "--check"],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
