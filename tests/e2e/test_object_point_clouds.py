"""GetObjectPointClouds through the whole path: the module process on its socket, the stand-in parent serving a depth
camera (pets.jpg and a ray-cast scene with a box behind each dog the real COCO SSD finds), the real SSD model.

Checked: each dog's object against the scene's truth (centre within a few percent, width and height within 20 %,
no wall point), the PCD and geometry on the wire (metres vs millimetres, frame, label), the camera errors
(no point cloud, no intrinsics, GetPointCloud failing, slower than the deadline) with the rest of the service
still working, the intrinsics cache and its refresh after a failure, an empty cloud, and the stats stages.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np
import PIL.Image
import pytest

from devkit.depth_scene import PETS_DOGS, PETS_INTRINSICS, WALL, Scene, inset, pets_scene, scene_pcd
from devkit.standin.launcher import MLMODEL, VISION, ModuleProcess, short_tempdir
from devkit.standin.parent import CameraFrame, DepthData, FakeParent
from devkit.testdata import require_testdata
from module.gen.common.v1 import common_pb2
from module.gen.service.vision.v1 import vision_pb2 as pb
from module.resource.structs import dict_to_struct, struct_to_dict
from module.vision.objects3d import Box2D, enclosing_box_mm
from module.vision.pcd import read_pcd, write_pcd

pytestmark = pytest.mark.timeout(180)

SSD = "models/coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite"
PETS = "images/pets.jpg"
CAM = PETS_INTRINSICS
INTRINSICS = (CAM.width, CAM.height, CAM.fx, CAM.fy, CAM.ppx, CAM.ppy)


@dataclass
class World:
    parent: FakeParent
    module: ModuleProcess
    scene: Scene
    depth: DepthData
    photo: bytes


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    td = require_testdata(SSD, PETS)
    directory = short_tempdir()
    parent = FakeParent(os.path.join(directory, "parent.sock"))
    module = ModuleProcess(socket_dir=directory, log_level="info")
    photo = (td / PETS).read_bytes()
    scene = pets_scene(seed=5)
    pixels = np.asarray(PIL.Image.open(td / PETS).convert("RGB"))
    depth = DepthData(scene_pcd(scene, pixels), INTRINSICS)
    for camera in ("depth", "flat", "no-intrinsics", "empty"):
        parent.cameras[camera] = CameraFrame(photo, "image/jpeg")
    parent.point_clouds["depth"] = depth
    parent.point_clouds["no-intrinsics"] = DepthData(depth.point_cloud, None)
    parent.point_clouds["empty"] = DepthData(write_pcd(np.zeros((0, 3), np.float32)), INTRINSICS)
    try:
        module.wait_for_socket()
        module.ready(parent.address)
        module.add("ssd", MLMODEL, {"model_path": str(td / SSD), "pool_size": 1})
        module.add("vis", VISION, {"mlmodel_name": "ssd", "camera_name": "depth", "default_minimum_confidence": 0.5},
                   ("rdk:service:mlmodel/ssd", "rdk:component:camera/depth"))
        yield World(parent, module, scene, depth, photo)
    finally:
        module.close()
        parent.close()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def w(world: World) -> Iterator[World]:
    world.parent.clear_faults()
    world.parent.point_clouds["depth"] = world.depth
    yield world
    world.parent.clear_faults()
    world.parent.point_clouds["depth"] = world.depth
    assert world.module.proc.poll() is None, f"the module died:\n{world.module.log()[-3000:]}"


def objects(w: World, camera: str = "depth", timeout: float = 30) -> pb.GetObjectPointCloudsResponse:
    return w.module.vision.GetObjectPointClouds(pb.GetObjectPointCloudsRequest(
        name="vis", camera_name=camera, mime_type="pointcloud/pcd"), timeout=timeout)


def rpc_error(call: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value


def still_detects(w: World, camera: str = "depth") -> None:
    found = w.module.vision.GetDetectionsFromCamera(pb.GetDetectionsFromCameraRequest(name="vis", camera_name=camera),
                                                    timeout=30).detections
    assert [d.class_name for d in found] == ["dog", "dog"]


def test_each_dog_is_an_object_matching_the_scene(w: World) -> None:
    reply = objects(w)
    assert reply.mime_type == "pointcloud/pcd"
    assert len(reply.objects) == 2
    detections = w.module.vision.GetDetectionsFromCamera(pb.GetDetectionsFromCameraRequest(name="vis"), timeout=30).detections
    by_x = sorted(reply.objects, key=lambda o: o.geometries.geometries[0].center.x)
    for number, (obj, (_, box, z_front, _)) in enumerate(zip(by_x, PETS_DOGS), start=1):
        (geometry,) = obj.geometries.geometries
        assert obj.geometries.reference_frame == "depth"
        assert geometry.label == "dog" and geometry.WhichOneof("geometry_type") == "box"
        assert (geometry.center.o_x, geometry.center.o_y, geometry.center.o_z, geometry.center.theta) == (0, 0, 1, 0)
        cloud = read_pcd(obj.point_cloud)
        assert cloud.rgb is not None and len(cloud) > 1000
        # No wall point: every point is well in front of the wall (3 m; the dogs' boxes end at 1.26 and 2.2 m).
        assert cloud.xyz[:, 2].max() < 2.5 and cloud.xyz[:, 2].min() > z_front - 0.05
        # The truth: the box's visible points inside the detection the module actually made for this dog.
        det = min(detections, key=lambda d: abs(d.x_min - box[0]))
        truth = w.scene.truth_points(number, Box2D(det.x_min, det.y_min, det.x_max, det.y_max, "dog"))
        true_center, true_dims = enclosing_box_mm(truth)
        center = (geometry.center.x, geometry.center.y, geometry.center.z)
        dims = geometry.box.dims_mm
        assert np.all(np.abs(np.subtract(center, true_center)) < 0.03 * np.linalg.norm(true_center)), (center, true_center)
        # Width and height within 20 %; the depth extent too where it is above the depth noise (the deep box).
        axes = 3 if true_dims[2] > 100 else 2
        np.testing.assert_allclose([dims.x, dims.y, dims.z][:axes], true_dims[:axes], rtol=0.2)
        # Geometry in millimetres, points in metres: the same box either way.
        lo, hi = cloud.xyz.min(axis=0) * 1000, cloud.xyz.max(axis=0) * 1000
        np.testing.assert_allclose(center, (lo + hi) / 2, atol=1.0)
        np.testing.assert_allclose([dims.x, dims.y, dims.z], hi - lo, atol=1.0)


def test_wall_points_are_in_no_object(w: World) -> None:
    wall = w.scene.xyz[w.scene.labels == WALL]
    wall = {tuple(p) for p in wall[np.isfinite(wall).all(axis=1)].tolist()}
    for obj in objects(w).objects:
        points = read_pcd(obj.point_cloud).xyz.tolist()
        assert not [p for p in points if tuple(p) in wall]


def test_empty_camera_name_uses_the_configured_camera(w: World) -> None:
    assert len(objects(w, camera="").objects) == 2


def test_camera_without_point_clouds_is_failed_precondition_and_the_rest_works(w: World) -> None:
    err = rpc_error(lambda: objects(w, "flat"))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "'flat'" in err.details() and "supports_pcd" in err.details()
    still_detects(w, "flat")
    assert len(objects(w).objects) == 2


def test_camera_without_intrinsics_is_failed_precondition(w: World) -> None:
    err = rpc_error(lambda: objects(w, "no-intrinsics"))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "'no-intrinsics'" in err.details() and "intrinsic" in err.details()


def test_get_point_cloud_failing_is_failed_precondition_and_the_properties_are_asked_again(w: World) -> None:
    objects(w)  # intrinsics cached
    before = len(w.parent.calls("GetProperties"))
    objects(w)
    assert len(w.parent.calls("GetProperties")) == before  # cached: not asked again
    w.parent.fault("GetPointCloud", grpc.StatusCode.UNIMPLEMENTED, details="no depth sensor", times=1)
    err = rpc_error(lambda: objects(w))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "'depth'" in err.details() and "no depth sensor" in err.details()
    still_detects(w)
    assert len(objects(w).objects) == 2
    assert len(w.parent.calls("GetProperties")) == before + 1  # refreshed after the failure


def test_unreadable_point_cloud_is_failed_precondition(w: World) -> None:
    w.parent.point_clouds["depth"] = DepthData(b"FIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nWIDTH 1000\nDATA binary\n",
                                               INTRINSICS)
    err = rpc_error(lambda: objects(w))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "'depth'" in err.details() and "too short" in err.details()


def test_point_cloud_slower_than_the_deadline(w: World) -> None:
    w.parent.fault("GetPointCloud", delay=3.0, times=1)
    err = rpc_error(lambda: objects(w, timeout=1.0))
    assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    still_detects(w)


def test_empty_cloud_gives_no_objects(w: World) -> None:
    reply = objects(w, "empty")
    assert reply.mime_type == "pointcloud/pcd" and len(reply.objects) == 0


def test_properties_and_stats_show_the_3d_path(w: World) -> None:
    props = w.module.vision.GetProperties(pb.GetPropertiesRequest(name="vis"), timeout=30)
    assert props.object_point_clouds_supported and props.detections_supported
    objects(w)
    stats = struct_to_dict(w.module.vision.DoCommand(common_pb2.DoCommandRequest(
        name="vis", command=dict_to_struct({"command": "stats"})), timeout=30).result)
    for stage in ("camera", "infer", "point_cloud", "projection", "outlier_removal"):
        assert stats["stages"][stage]["count"] >= 1, stage


def test_the_scene_boxes_sit_inside_the_detections(w: World) -> None:
    # The scene is placed where the SSD finds the dogs: each box's front face covers the middle of a detection.
    found = w.module.vision.GetDetectionsFromCamera(pb.GetDetectionsFromCameraRequest(name="vis"), timeout=30).detections
    for (_, box, _, _), det in zip(PETS_DOGS, sorted(found, key=lambda d: d.x_min)):
        x0, y0, x1, y1 = inset(box, 0.1)
        assert det.x_min < x0 and det.y_min < y0 and det.x_max > x1 and det.y_max > y1



def test_capture_all_from_camera_returns_the_objects_too(w: World) -> None:
    reply = w.module.vision.CaptureAllFromCamera(pb.CaptureAllFromCameraRequest(
        name="vis", camera_name="depth", return_image=True, return_detections=True, return_object_point_clouds=True),
        timeout=30)
    assert reply.image.image == w.photo and len(reply.detections) == 2
    assert [o.geometries.geometries[0].label for o in reply.objects] == ["dog", "dog"]
    assert sorted(o.geometries.geometries[0].center.z for o in reply.objects) == pytest.approx(
        sorted(o.geometries.geometries[0].center.z for o in objects(w).objects))
