"""VisionService.object_point_clouds in-process, against the stand-in parent (devkit/standin/parent.py) serving a
depth camera: a synthetic detector whose box sits over a ray-cast cuboid in front of a wall."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np
import pytest

from devkit import models as model_factory
from devkit.depth_scene import WALL, Cuboid, inset, render, scene_pcd
from devkit.standin.launcher import short_tempdir
from devkit.standin.parent import CameraFrame, DepthData, FakeParent
from module.errors import FailedPreconditionError, InvalidInputError
from module.parent import ParentClient
from module.resource.registry import ResourceContext
from module.vision.config import VisionConfig
from module.vision.objects3d import Intrinsics, enclosing_box_mm
from module.vision.service import VisionService
from tests.support.vision_harness import BOX, HEIGHT, WIDTH, Harness, harness, image_bytes

__all__ = ["harness"]  # the fixture

INTRINSICS = Intrinsics(WIDTH, HEIGHT, 120.0, 120.0, (WIDTH - 1) / 2, (HEIGHT - 1) / 2)
PIXEL_BOX = (BOX[0] * WIDTH, BOX[1] * HEIGHT, BOX[2] * WIDTH, BOX[3] * HEIGHT)


@dataclass
class Depth:
    parent: FakeParent
    client: ParentClient
    cloud: DepthData
    truth: Any  # the scene


@pytest.fixture
def depth() -> Iterator[Depth]:
    directory = short_tempdir()
    parent = FakeParent(os.path.join(directory, "parent.sock"))
    scene = render(INTRINSICS, [Cuboid.behind_pixels(INTRINSICS, inset(PIXEL_BOX, 0.1), 1.0, 0.05, "cat")], wall_z=2.0)
    i = INTRINSICS
    cloud = DepthData(scene_pcd(scene), (i.width, i.height, i.fx, i.fy, i.ppx, i.ppy))
    for camera in ("cam", "flat"):
        parent.cameras[camera] = CameraFrame(image_bytes(), "image/png")
    parent.point_clouds["cam"] = cloud
    client = ParentClient(parent.address)
    try:
        yield Depth(parent, client, cloud, scene)
    finally:
        client.close()
        parent.close()


def service(h: Harness, depth: Depth, model: bytes, **attrs: Any) -> VisionService:
    h.model(model)
    config = VisionConfig.parse({"mlmodel_name": "mlmodel", "camera_name": "cam", **attrs})
    return VisionService.create(ResourceContext("vision", (), h.resources, lambda: depth.client), config)


def detector() -> bytes:
    return model_factory.detector_model([BOX], [0], [0.9])


def test_the_detection_becomes_the_object_in_front_of_the_wall(harness: Harness, depth: Depth) -> None:
    svc = service(harness, depth, detector(), label_path=harness.labels(["cat"]))
    found = svc.object_point_clouds("")
    assert found.camera == "cam"
    (obj,) = found.objects
    assert obj.label == "cat" and obj.score == pytest.approx(0.9, abs=0.01)
    wall = depth.truth.clean[depth.truth.clean_labels == WALL]
    assert obj.points.xyz[:, 2].max() < np.nanmin(wall[:, 2]) - 0.5  # no wall point (the wall is 1 m behind)
    true_center, true_dims = enclosing_box_mm(depth.truth.truth_points(1, depth.truth.pixel_box(1, margin=50)))
    np.testing.assert_allclose(obj.center_mm, true_center, atol=0.03 * np.linalg.norm(true_center))
    np.testing.assert_allclose(obj.dims_mm[:2], true_dims[:2], rtol=0.2)
    stages = svc.do_command({"command": "stats"})["stages"]
    assert {"camera", "infer", "point_cloud", "projection", "outlier_removal"} <= set(stages)


def test_properties_say_a_detector_gives_object_point_clouds(harness: Harness, depth: Depth) -> None:
    assert service(harness, depth, detector()).properties().object_point_clouds_supported
    classifier = service(harness, depth, model_factory.classifier_model([0.2, 0.8]))
    assert not classifier.properties().object_point_clouds_supported
    with pytest.raises(FailedPreconditionError, match="not a detector"):
        classifier.object_point_clouds("cam")


def test_camera_without_point_clouds_names_it_and_2d_calls_still_work(harness: Harness, depth: Depth) -> None:
    svc = service(harness, depth, detector())
    with pytest.raises(FailedPreconditionError, match="camera 'flat'.*supports_pcd"):
        svc.object_point_clouds("flat")
    assert len(svc.detections_from_camera("flat")) == 1
    assert len(svc.object_point_clouds("cam").objects) == 1


def test_intrinsics_are_cached_and_asked_again_after_a_failure(harness: Harness, depth: Depth) -> None:
    svc = service(harness, depth, detector())
    svc.object_point_clouds("cam")
    svc.object_point_clouds("cam")
    assert len(depth.parent.calls("GetProperties")) == 1
    depth.parent.fault("GetPointCloud", grpc.StatusCode.INTERNAL, details="sensor unplugged", times=1)
    with pytest.raises(FailedPreconditionError, match="camera 'cam'.*sensor unplugged"):
        svc.object_point_clouds("cam")
    # A new camera config with other intrinsics, picked up because the failure dropped the cached ones.
    w, h, fx, fy, cx, cy = depth.cloud.intrinsics or ()
    depth.parent.point_clouds["cam"] = DepthData(depth.cloud.point_cloud, (w, h, fx, fy, cx + 1000, cy))
    assert svc.object_point_clouds("cam").objects == []  # the cloud now projects off the box: nothing inside
    assert len(depth.parent.calls("GetProperties")) == 2
    assert svc.stats.snapshot()["errors"] >= 1


def test_attributes_reach_the_3d_stage(harness: Harness, depth: Depth) -> None:
    assert service(harness, depth, detector(), min_object_points=1_000_000).object_point_clouds("cam").objects == []
    unfiltered = service(harness, depth, detector(), mean_k=0, depth_gap_mm=0).object_point_clouds("cam").objects
    assert unfiltered[0].points.xyz[:, 2].max() > 1.9  # no depth split: the wall behind is kept


def test_empty_cloud_and_missing_intrinsics(harness: Harness, depth: Depth) -> None:
    svc = service(harness, depth, detector())
    i = INTRINSICS
    from module.vision.pcd import write_pcd

    depth.parent.point_clouds["cam"] = DepthData(write_pcd(np.zeros((0, 3), np.float32)), (i.width, i.height, i.fx,
                                                                                           i.fy, i.ppx, i.ppy))
    assert svc.object_point_clouds("cam").objects == []
    depth.parent.point_clouds["cam"] = DepthData(depth.cloud.point_cloud, None)
    depth.client.forget_camera("cam")
    with pytest.raises(FailedPreconditionError, match="camera 'cam' reports no intrinsic parameters"):
        svc.object_point_clouds("cam")


def test_no_camera_name_anywhere(harness: Harness, depth: Depth) -> None:
    harness.model(detector())
    svc = VisionService.create(ResourceContext("vision", (), harness.resources, lambda: depth.client),
                               VisionConfig.parse({"mlmodel_name": "mlmodel"}))
    with pytest.raises(InvalidInputError, match="camera_name"):
        svc.object_point_clouds("")


def test_capture_all_gives_the_objects_of_its_own_frame(harness: Harness, depth: Depth) -> None:
    svc = service(harness, depth, detector())
    capture = svc.capture_all("", want_detections=False, want_classifications=True, want_objects=True)
    assert capture.detections is None and capture.classifications is None  # not asked / a detector
    assert capture.objects is not None and capture.objects.camera == "cam"
    (obj,) = capture.objects.objects
    (alone,) = svc.object_point_clouds("cam").objects
    np.testing.assert_array_equal(obj.indices, alone.indices)
    assert len(depth.parent.calls("GetImages")) == 2  # one frame per call
    assert svc.capture_all("cam", want_detections=True, want_classifications=False).objects is None
    with pytest.raises(FailedPreconditionError, match="camera 'flat'"):
        svc.capture_all("flat", want_detections=True, want_classifications=False, want_objects=True)


def test_a_yolo_detector_gives_object_point_clouds_too(harness: Harness, depth: Depth) -> None:
    # An end-to-end YOLO head (x1, y1, x2, y2, score, class), normalised to the letterboxed 64 x 64 input: the
    # 200 x 100 picture fills 64 x 32 of it between 16-pixel bands, so BOX (0.1, 0.2, 0.6, 0.9) of the picture is
    # (0.1, 0.35, 0.6, 0.7) of the input.
    rows = np.zeros((300, 6))
    rows[0] = [0.1, 0.35, 0.6, 0.7, 0.9, 0]
    model = model_factory.yolo_model(rows[None], ultralytics={"task": "detect", "end2end": True, "names": {"0": "cat"}})
    svc = service(harness, depth, model)
    assert svc.properties().object_point_clouds_supported
    (obj,) = svc.object_point_clouds("cam").objects
    assert obj.label == "cat" and obj.score == pytest.approx(0.9, abs=0.01)
    true_center, _ = enclosing_box_mm(depth.truth.truth_points(1, depth.truth.pixel_box(1, margin=50)))
    np.testing.assert_allclose(obj.center_mm, true_center, atol=0.03 * np.linalg.norm(true_center))
