"""3D objects from 2D detections and a depth camera's point cloud (GetObjectPointClouds).

Pure helpers (no gRPC). Conventions as Viam's: points in metres in the camera frame (x right, y down, z forward),
pinhole intrinsics in pixels (``u = fx * x / z + ppx``, ``v = fy * y / z + ppy``, pixel *i*'s centre at *i*),
geometry in millimetres.

Per detection, in order (each step vectorised over the points, no per-point Python):

1. **box**: the points whose projection falls on a pixel inside the detection's box (boxes given for an image of
   another size than the intrinsics' are scaled to it);
2. **nearest dense cluster along the ray**: a box around an object also covers what lies behind it (a wall, the
   floor far away). The box's depths are binned (bins of ``depth_gap / 4``); bins holding fewer than
   :data:`DENSE_BIN_SHARE` of the box's points (flying pixels at depth edges, stray returns) are sparse; dense
   bins separated by at least ``depth_gap`` of sparse ones form separate clusters, and the nearest cluster
   holding at least :data:`MIN_CLUSTER_SHARE` of the box's points is the object (else the largest). Surfaces less
   than ``depth_gap`` apart along the view direction never split (so a surface seen at a grazing angle, whose
   depth jumps from one pixel column to the next, stays whole); ``1.5 * depth_gap`` or more apart they always do;
3. **thinning**: a cluster above ``max_points`` keeps every k-th point (in cloud order, so an organised cloud
   thins as a regular grid), which bounds the time and memory of the next step;
4. **statistical outlier removal** as rdk's ``StatisticalOutlierFilter`` (PCL's): for each point the mean distance
   to its ``mean_k`` nearest neighbours (itself excluded); points whose mean distance is above the mean of those
   means plus ``sigma`` sample standard deviations are removed. ``mean_k`` or ``sigma`` <= 0 disables it (as rdk);
5. **geometry**: the axis-aligned box enclosing the remaining points (centre at the middle of their extent, so the
   box contains every point; rdk centres its box on the points' mean instead), in millimetres, labelled with the
   class name. Objects left with fewer than ``min_points`` points are **left out**, as rdk leaves out objects its
   filter emptied.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

from module.errors import InvalidInputError
from module.vision.pcd import PointCloud

DENSE_BIN_SHARE: Final = 0.001
"""A depth bin is dense when it holds at least this share of the box's points (and at least 3)."""
MIN_CLUSTER_SHARE: Final = 0.1
"""The nearest cluster with at least this share of the box's points is the object."""
_BINS_PER_GAP: Final = 4
"""Depth bins per ``depth_gap``; clusters split at ``_BINS_PER_GAP`` or more sparse bins in a row."""
KNN_CHUNK: Final = 8192
"""Points per nearest-neighbour query: bounds the (chunk, mean_k + 1) distance and index arrays."""

StageTimer = Callable[[str], AbstractContextManager[object]]


@dataclass(frozen=True, slots=True)
class Intrinsics:
    """Pinhole parameters of the camera that produced the cloud (camera GetProperties ``intrinsic_parameters``)."""

    width: int
    height: int
    fx: float
    fy: float
    ppx: float
    ppy: float

    def check(self, camera: str = "") -> None:
        """Raise InvalidInputError unless the focal lengths and the size are positive and all are finite."""
        values = (self.fx, self.fy, self.ppx, self.ppy)
        if not all(math.isfinite(v) for v in values) or self.fx <= 0 or self.fy <= 0 or self.width < 1 or self.height < 1:
            where = f" of camera {camera!r}" if camera else ""
            raise InvalidInputError(f"intrinsic parameters{where} are unusable: focal lengths and size must be > 0, got fx={self.fx} "
                                    f"fy={self.fy} ppx={self.ppx} ppy={self.ppy} size={self.width}x{self.height}")


@dataclass(frozen=True, slots=True)
class Box2D:
    """A detection in pixel-edge coordinates of the image it was found in."""

    x_min: float
    y_min: float
    x_max: float
    y_max: float
    label: str
    score: float = 1.0


@dataclass(frozen=True, slots=True)
class SegmentSettings:
    """The knobs of the 3D stage (vision config attributes ``mean_k``, ``sigma``, ``depth_gap_mm``,
    ``min_object_points``, ``max_object_points``)."""

    mean_k: int = 50
    sigma: float = 2.0
    depth_gap_m: float = 0.05
    min_points: int = 10
    max_points: int = 25_000


@dataclass(frozen=True, slots=True)
class Object3D:
    """One detected object: its points (metres, camera frame) and the enclosing box (millimetres)."""

    label: str
    score: float
    points: PointCloud
    indices: NDArray[np.intp]  # of the points in the input cloud
    center_mm: tuple[float, float, float]
    dims_mm: tuple[float, float, float]


@dataclass(frozen=True, slots=True)
class Projection:
    """Every point of the cloud in front of the camera, with where it falls on the image, in pixel-edge
    coordinates (pixel i spans [i, i + 1); a point projecting onto pixel i's centre is at i + 0.5)."""

    cloud: PointCloud
    source: NDArray[np.intp]  # index of each point in the projected cloud
    u: NDArray[np.float32]
    v: NDArray[np.float32]


def segment_objects(cloud: PointCloud, intrinsics: Intrinsics, detections: Sequence[Box2D], image_size: tuple[int, int],
                    settings: SegmentSettings = SegmentSettings(), time_stage: StageTimer | None = None) -> list[Object3D]:
    """One :class:`Object3D` per detection that keeps at least ``settings.min_points`` points, in detection order.

    Args:
        cloud: The camera's points in metres.
        intrinsics: The camera's pinhole parameters (for the cloud's projection).
        detections: Boxes in pixels of an image of ``image_size``.
        image_size: (width, height) of the image the detections were found in.
        settings: Outlier filter and clustering parameters.
        time_stage: Context manager factory timing the stages ``projection`` and ``outlier_removal`` (stats).
    """
    stage = time_stage or (lambda _name: nullcontext())
    if len(cloud) == 0 or not detections:
        return []
    with stage("projection"):
        projection = project(cloud, intrinsics)
        scale_x, scale_y = _box_scale(intrinsics, image_size)
        selections = []
        for det in detections:
            inside = np.flatnonzero(in_box(projection, det, scale_x, scale_y))
            if inside.size:
                inside = inside[nearest_depth_cluster(projection.cloud.xyz[inside, 2], settings.depth_gap_m)]
            selections.append(thin(inside, settings.max_points))
    objects = []
    with stage("outlier_removal"):
        for det, selected in zip(detections, selections):
            if selected.size < settings.min_points:
                continue
            selected = selected[statistical_inliers(projection.cloud.xyz[selected], settings.mean_k, settings.sigma)]
            if selected.size < settings.min_points:
                continue
            points = projection.cloud.subset(selected)
            center, dims = enclosing_box_mm(points.xyz)
            objects.append(Object3D(label=det.label, score=det.score, points=points, indices=projection.source[selected],
                                    center_mm=center, dims_mm=dims))
    return objects


def project(cloud: PointCloud, intrinsics: Intrinsics) -> Projection:
    """The points in front of the camera (z > 0) and where each projects onto the image."""
    source = np.flatnonzero(cloud.xyz[:, 2] > 0)
    kept = cloud if source.size == len(cloud) else cloud.subset(source)
    x, y, z = kept.xyz[:, 0], kept.xyz[:, 1], kept.xyz[:, 2]
    u = (intrinsics.fx * x / z + (intrinsics.ppx + 0.5)).astype(np.float32)
    v = (intrinsics.fy * y / z + (intrinsics.ppy + 0.5)).astype(np.float32)
    return Projection(kept, source, u, v)


def _box_scale(intrinsics: Intrinsics, image_size: tuple[int, int]) -> tuple[float, float]:
    """Factors from detection-image pixels to intrinsics pixels (1 when the sizes agree or either is unknown)."""
    width, height = image_size
    sx = intrinsics.width / width if intrinsics.width and width else 1.0
    sy = intrinsics.height / height if intrinsics.height and height else 1.0
    return sx, sy


def in_box(projection: Projection, box: Box2D, scale_x: float = 1.0, scale_y: float = 1.0) -> NDArray[np.bool_]:
    """Mask of the points whose pixel-edge position is inside the box (scaled first): for integer boxes, the points
    on pixels i with ``x_min <= i < x_max`` and rows likewise, as rdk takes a detection's pixels."""
    u, v = projection.u, projection.v
    return (u >= box.x_min * scale_x) & (u < box.x_max * scale_x) & (v >= box.y_min * scale_y) & (v < box.y_max * scale_y)


def nearest_depth_cluster(z: NDArray[np.floating], gap: float) -> NDArray[np.bool_]:
    """Mask of the nearest dense cluster of depths ``z`` (see the module docstring, step 2)."""
    n = z.size
    if n == 0 or gap <= 0:
        return np.ones(n, dtype=bool)
    bins = np.floor(z.astype(np.float64) / (gap / _BINS_PER_GAP)).astype(np.int64)
    occupied, counts = np.unique(bins, return_counts=True)
    dense = counts >= max(3, math.ceil(DENSE_BIN_SHARE * n))
    if not dense.any():
        return np.ones(n, dtype=bool)  # too few points to tell surfaces apart: the outlier filter decides
    dense_bins, dense_counts = occupied[dense], counts[dense]
    run = np.concatenate(([0], np.cumsum(np.diff(dense_bins) > _BINS_PER_GAP)))
    run_sizes = np.bincount(run, weights=dense_counts)
    qualifying = np.flatnonzero(run_sizes >= MIN_CLUSTER_SHARE * n)
    chosen = qualifying[0] if qualifying.size else int(np.argmax(run_sizes))
    members = dense_bins[run == chosen]
    keep: NDArray[np.bool_] = (bins >= members[0]) & (bins <= members[-1])
    return keep


def thin(indices: NDArray[np.intp], limit: int) -> NDArray[np.intp]:
    """At most about ``limit`` of ``indices``, evenly spaced (every k-th)."""
    if limit <= 0 or indices.size <= limit:
        return indices
    return indices[:: math.ceil(indices.size / limit)]


def statistical_inliers(xyz: NDArray[np.floating], mean_k: int, sigma: float) -> NDArray[np.bool_]:
    """Mask of the points kept by the statistical outlier filter (module docstring, step 4).

    A point is kept when its mean distance to its ``mean_k`` nearest neighbours is at most the mean of those
    distances over all points plus ``sigma`` sample standard deviations. With fewer than ``mean_k + 1`` points,
    all the others are the neighbours. Disabled (all kept) when ``mean_k <= 0`` or ``sigma <= 0``.
    """
    n = xyz.shape[0]
    k = min(mean_k, n - 1)
    if mean_k <= 0 or sigma <= 0 or k < 1:
        return np.ones(n, dtype=bool)
    from scipy.spatial import cKDTree  # imported on first use: keeps module start-up fast

    points = np.asarray(xyz, dtype=np.float64)
    tree = cKDTree(points)
    mean_distance = np.empty(n, dtype=np.float64)
    for start in range(0, n, KNN_CHUNK):
        distances, _ = tree.query(points[start:start + KNN_CHUNK], k=k + 1)
        mean_distance[start:start + KNN_CHUNK] = distances[:, 1:].mean(axis=1)  # column 0 is the point itself
    threshold = mean_distance.mean() + sigma * mean_distance.std(ddof=1)
    keep: NDArray[np.bool_] = mean_distance <= threshold
    return keep


def enclosing_box_mm(xyz: NDArray[np.floating]) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """Centre and dimensions (millimetres) of the axis-aligned box enclosing ``xyz`` (metres)."""
    low = xyz.min(axis=0).astype(np.float64)
    high = xyz.max(axis=0).astype(np.float64)
    center = (low + high) * 500.0
    dims = (high - low) * 1000.0
    return (float(center[0]), float(center[1]), float(center[2])), (float(dims[0]), float(dims[1]), float(dims[2]))
