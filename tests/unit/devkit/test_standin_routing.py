"""The stand-in routes a client's call by the resource name in the request's bytes, without the request's class."""

from __future__ import annotations

from devkit.standin.parent import request_name
from module.gen.common.v1 import common_pb2
from module.gen.service.mlmodel.v1 import mlmodel_pb2
from module.gen.service.vision.v1 import vision_pb2
from module.resource.structs import dict_to_struct


def test_the_name_is_read_from_any_resource_request() -> None:
    requests = [
        vision_pb2.GetDetectionsFromCameraRequest(name="detector", camera_name="cam"),
        vision_pb2.GetClassificationsRequest(name="clf-ü", image=b"\xff" * 300, width=640, height=480, n=5),
        mlmodel_pb2.InferRequest(name="coco-ssd"),
        common_pb2.DoCommandRequest(name="x" * 200, command=dict_to_struct({"command": "stats"})),
    ]
    for request in requests:
        assert request_name(request.SerializeToString()) == request.name


def test_the_name_is_found_after_other_fields_and_missing_or_broken_input_gives_empty() -> None:
    # field 2 (a varint) and field 3 (fixed64) written before field 1
    raw = bytes([0x10, 0x96, 0x01, 0x19]) + bytes(8) + bytes([0x0A, 0x03]) + b"cam"
    assert request_name(raw) == "cam"
    assert request_name(b"") == ""
    assert request_name(vision_pb2.GetDetectionsFromCameraRequest(camera_name="cam").SerializeToString()) == ""
    assert request_name(bytes([0x0A, 0x80])) == ""  # truncated length
