"""3D objects from detections and a point cloud: synthetic scenes whose truth is known (devkit/depth_scene.py)."""

from __future__ import annotations

import numpy as np
import pytest

from devkit.depth_scene import FLYING, WALL, Cuboid, render
from module.errors import InvalidInputError
from module.vision.objects3d import (
    Box2D,
    Intrinsics,
    SegmentSettings,
    enclosing_box_mm,
    in_box,
    nearest_depth_cluster,
    project,
    segment_objects,
    statistical_inliers,
    thin,
)
from module.vision.pcd import PointCloud

INTRINSICS = Intrinsics(width=640, height=480, fx=600.0, fy=600.0, ppx=319.5, ppy=239.5)
# A wall at 3 m; a near box to the left (its right side is well in view), a box to the lower right, and a small
# box 10 cm in front of the wall (only the depth split can tell them apart).
OBJECTS = (Cuboid((-0.6, -0.3), (-0.2, 0.2), (1.0, 1.3), "near"), Cuboid((0.25, 0.55), (0.05, 0.35), (1.4, 1.6), "right"),
           Cuboid((-0.1, 0.1), (-0.5, -0.3), (2.8, 2.9), "by the wall"))


@pytest.fixture(scope="module")
def scene():  # type: ignore[no-untyped-def]
    return render(INTRINSICS, OBJECTS, wall_z=3.0, flying_share=0.02, hole_share=0.02, seed=7)


def cloud_with_indices(scene) -> tuple[PointCloud, np.ndarray]:  # type: ignore[no-untyped-def]
    """The scene as a reader returns it (holes dropped) and, for each point, its pixel index."""
    finite = np.flatnonzero(np.isfinite(scene.xyz).all(axis=1))
    return PointCloud(scene.xyz[finite]), finite


def test_objects_match_the_truth_and_hold_no_wall(scene) -> None:  # type: ignore[no-untyped-def]
    cloud, pixel = cloud_with_indices(scene)
    boxes = [scene.pixel_box(i, margin=10) for i in range(1, len(OBJECTS) + 1)]  # margin: the wall shows around each
    objects = segment_objects(cloud, INTRINSICS, boxes, (640, 480), SegmentSettings(max_points=0))
    assert [o.label for o in objects] == ["near", "right", "by the wall"]
    for number, (obj, box) in enumerate(zip(objects, boxes), start=1):
        labels = scene.labels[pixel[obj.indices]]
        assert not (labels == WALL).any(), f"{obj.label}: {(labels == WALL).sum()} wall points"
        assert (labels == FLYING).mean() < 0.01, f"{obj.label}: {(labels == FLYING).mean():.1%} flying pixels kept"
        assert np.isin(labels, [number, FLYING]).all(), f"{obj.label}: points of another object"
        truth = scene.truth_points(number, box)
        assert len(obj.points) > 0.9 * len(truth)
        true_center, true_dims = enclosing_box_mm(truth)
        distance = np.linalg.norm(true_center)
        assert np.all(np.abs(np.subtract(obj.center_mm, true_center)) < 0.03 * distance), (obj.label, obj.center_mm, true_center)
        # Width and height within 20 %. The depth extent too where the object's side is sampled densely enough:
        # the far small box shows its side on two pixel rows, which the outlier filter (correctly) thins away.
        axes = 3 if number < 3 else 2
        np.testing.assert_allclose(obj.dims_mm[:axes], true_dims[:axes], rtol=0.2, err_msg=obj.label)


def test_geometry_is_in_millimetres_and_points_in_metres(scene) -> None:  # type: ignore[no-untyped-def]
    cloud, _ = cloud_with_indices(scene)
    (near,) = segment_objects(cloud, INTRINSICS, [scene.pixel_box(1, margin=4)], (640, 480))
    assert 1000 < near.center_mm[2] < 1300  # the box spans 1.0-1.3 m
    assert 1.0 - 0.01 < near.points.xyz[:, 2].min() and near.points.xyz[:, 2].max() < 1.3 + 0.01


def test_without_the_depth_split_the_wall_would_be_in_the_object(scene) -> None:  # type: ignore[no-untyped-def]
    # The check above can fail: with the split disabled (depth_gap 0) the wall behind the box is kept.
    cloud, pixel = cloud_with_indices(scene)
    (obj,) = segment_objects(cloud, INTRINSICS, [scene.pixel_box(2, margin=10)], (640, 480),
                             SegmentSettings(depth_gap_m=0.0))
    assert (scene.labels[pixel[obj.indices]] == WALL).any()


def test_boxes_for_a_larger_image_are_scaled_to_the_intrinsics(scene) -> None:  # type: ignore[no-untyped-def]
    cloud, _ = cloud_with_indices(scene)
    box = scene.pixel_box(1, margin=6)
    doubled = Box2D(box.x_min * 2, box.y_min * 2, box.x_max * 2, box.y_max * 2, box.label)
    (a,) = segment_objects(cloud, INTRINSICS, [box], (640, 480))
    (b,) = segment_objects(cloud, INTRINSICS, [doubled], (1280, 960))
    assert np.array_equal(a.indices, b.indices)


def test_rgb_follows_the_points() -> None:
    xyz = np.array([[0, 0, 1], [0.001, 0, 1], [0, 0.001, 1], [0.001, 0.001, 1]], dtype=np.float32)
    cloud = PointCloud(xyz, np.array([1, 2, 3, 4], dtype=np.uint32))
    (obj,) = segment_objects(cloud, INTRINSICS, [Box2D(0, 0, 640, 480, "x")], (640, 480), SegmentSettings(min_points=4))
    np.testing.assert_array_equal(obj.points.rgb, [1, 2, 3, 4])


def test_empty_cloud_or_no_detection_gives_no_object(scene) -> None:  # type: ignore[no-untyped-def]
    empty = PointCloud(np.zeros((0, 3), dtype=np.float32))
    assert segment_objects(empty, INTRINSICS, [Box2D(0, 0, 640, 480, "x")], (640, 480)) == []
    cloud, _ = cloud_with_indices(scene)
    assert segment_objects(cloud, INTRINSICS, [], (640, 480)) == []


def test_objects_with_too_few_points_are_left_out(scene) -> None:  # type: ignore[no-untyped-def]
    cloud, _ = cloud_with_indices(scene)
    tiny = Box2D(100, 100, 102, 102, "speck")  # 4 pixels
    objects = segment_objects(cloud, INTRINSICS, [tiny, scene.pixel_box(1)], (640, 480), SegmentSettings(min_points=10))
    assert [o.label for o in objects] == ["near"]
    outside = Box2D(700, 500, 800, 600, "off the image")
    assert segment_objects(cloud, INTRINSICS, [outside], (640, 480)) == []


def test_points_behind_the_camera_are_ignored() -> None:
    xyz = np.array([[0, 0, -1], [0, 0, 0], [0, 0, 1]], dtype=np.float32)
    projection = project(PointCloud(xyz), INTRINSICS)
    np.testing.assert_array_equal(projection.cloud.xyz, [[0, 0, 1]])
    np.testing.assert_array_equal(projection.source, [2])


def test_projection_uses_pixel_centres_as_rdk() -> None:
    # ppx 319.5: a point on the optical axis lands on the centre of pixel... 319.5, i.e. the edge of 319 and 320.
    xyz = np.array([[0, 0, 2], [0.1, 0.05, 1]], dtype=np.float32)
    projection = project(PointCloud(xyz), Intrinsics(640, 480, 500, 400, 320, 240))
    np.testing.assert_allclose(projection.u, [320.5, 370.5])
    np.testing.assert_allclose(projection.v, [240.5, 260.5])
    assert in_box(projection, Box2D(320, 240, 321, 241, "pixel 320,240")).tolist() == [True, False]
    assert in_box(projection, Box2D(370, 260, 371, 261, "pixel 370,260")).tolist() == [False, True]


def test_nearest_dense_cluster_skips_sparse_points_in_front_and_between() -> None:
    rng = np.random.default_rng(0)
    object_z = rng.normal(1.0, 0.003, 4000)
    wall_z = rng.normal(2.0, 0.006, 6000)  # more points than the object: the nearest, not the largest, wins
    flying = rng.uniform(0.3, 2.0, 40)  # 0.4 %, spread along the rays
    z = np.concatenate([object_z, wall_z, flying])
    keep = nearest_depth_cluster(z, 0.05)
    assert keep[:4000].all()
    assert not keep[4000:10000].any()
    assert keep[10000:].sum() <= 3  # only flying pixels that landed within the object's depth


def test_depth_cluster_keeps_surfaces_closer_than_the_gap_together() -> None:
    z = np.concatenate([np.full(500, 1.0), np.full(500, 1.04)])  # 40 mm apart, gap 50 mm
    assert nearest_depth_cluster(z, 0.05).all()
    z = np.concatenate([np.full(500, 1.0), np.full(500, 1.08)])  # 80 mm apart (>= 1.5 gaps): split
    assert nearest_depth_cluster(z, 0.05).tolist() == [True] * 500 + [False] * 500


def test_small_front_cluster_is_not_the_object() -> None:
    z = np.concatenate([np.full(50, 0.5), np.full(2000, 1.2)])  # 2.4 % of the box in front: noise, not the object
    keep = nearest_depth_cluster(z, 0.05)
    assert not keep[:50].any() and keep[50:].all()


def brute_force_inliers(xyz: np.ndarray, k: int, sigma: float) -> np.ndarray:
    distances = np.linalg.norm(xyz[:, None, :] - xyz[None, :, :], axis=2)
    nearest = np.sort(distances, axis=1)[:, 1:k + 1]
    mean = nearest.mean(axis=1)
    return mean <= mean.mean() + sigma * mean.std(ddof=1)


@pytest.mark.parametrize("k, sigma", [(5, 1.0), (20, 2.0), (50, 1.25)])
def test_statistical_filter_matches_its_definition(k: int, sigma: float) -> None:
    rng = np.random.default_rng(k)
    xyz = np.concatenate([rng.normal(0, 0.01, (300, 3)), rng.uniform(-0.5, 0.5, (15, 3))])
    np.testing.assert_array_equal(statistical_inliers(xyz, k, sigma), brute_force_inliers(xyz, k, sigma))


def test_statistical_filter_removes_isolated_points_and_can_be_disabled() -> None:
    rng = np.random.default_rng(1)
    xyz = np.concatenate([rng.normal(0, 0.01, (1000, 3)), [[1, 1, 1], [-1, 0.5, 2]]])
    keep = statistical_inliers(xyz, 50, 2.0)
    assert not keep[-2:].any() and keep[:1000].mean() > 0.95
    assert statistical_inliers(xyz, 0, 2.0).all() and statistical_inliers(xyz, 50, 0.0).all()
    assert statistical_inliers(xyz[:1], 50, 2.0).all()  # one point has no neighbours: kept


def test_thinning_is_even_and_bounded() -> None:
    indices = np.arange(100_000)
    thinned = thin(indices, 25_000)
    assert len(thinned) == 25_000 and np.all(np.diff(thinned) == 4)
    assert thin(indices[:10], 25_000).tolist() == list(range(10))


def test_large_object_is_thinned_to_the_limit(scene) -> None:  # type: ignore[no-untyped-def]
    cloud, _ = cloud_with_indices(scene)
    (obj,) = segment_objects(cloud, INTRINSICS, [scene.pixel_box(1)], (640, 480), SegmentSettings(max_points=5000))
    assert len(obj.points) <= 5000


def test_bad_intrinsics_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="camera 'depth'.*fx=0"):
        Intrinsics(640, 480, 0.0, 600.0, 320, 240).check("depth")
    Intrinsics(640, 480, 600.0, 600.0, 320, 240).check("depth")
