"""Case: GetObjectPointClouds' own work on a 640x480 organised cloud (307,200 points), in-process.

The scene (devkit/depth_scene.py): a wall 3 m away and three boxes, noise and 1 % flying pixels, no holes, so the
PCD holds exactly 640 x 480 points. Timed separately: reading the binary PCD, segmenting three detections (box
selection, depth split, outlier filter with the default mean_k 50 / sigma 2, geometry), the same plus a box
covering the whole frame (the worst case: every point in one box), and writing the objects' PCDs. Peak memory is
tracemalloc's (NumPy's buffers included) over one read + segment.

Run this case alone: ``.venv/bin/python -m bench.cases.point_clouds [--samples N]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tracemalloc
from typing import Any

from bench.stats import summary, time_calls
from devkit.depth_scene import Cuboid, render, scene_pcd
from module.vision.objects3d import Box2D, Intrinsics, SegmentSettings, segment_objects
from module.vision.pcd import read_pcd, write_pcd

INTRINSICS = Intrinsics(width=640, height=480, fx=600.0, fy=600.0, ppx=319.5, ppy=239.5)
OBJECTS = (Cuboid((-0.6, -0.3), (-0.2, 0.2), (1.0, 1.3), "near"), Cuboid((0.25, 0.55), (0.05, 0.35), (1.4, 1.6), "right"),
           Cuboid((-0.1, 0.1), (-0.5, -0.3), (2.8, 2.9), "by the wall"))


def point_clouds(n: int) -> dict[str, Any]:
    scene = render(INTRINSICS, OBJECTS, hole_share=0.0, seed=1)
    pcd = scene_pcd(scene)
    cloud = read_pcd(pcd)
    boxes = [scene.pixel_box(i, margin=10) for i in range(1, len(OBJECTS) + 1)]
    everything = [*boxes, Box2D(0, 0, 640, 480, "whole frame")]
    settings = SegmentSettings()
    size = (INTRINSICS.width, INTRINSICS.height)
    found = segment_objects(cloud, INTRINSICS, boxes, size, settings)  # also imports scipy, outside the timings
    tracemalloc.start()
    segment_objects(read_pcd(pcd), INTRINSICS, everything, size, settings)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {
        "points": len(cloud), "pcd_bytes": len(pcd), "objects": [len(o.points) for o in found],
        "settings": {"mean_k": settings.mean_k, "sigma": settings.sigma, "depth_gap_m": settings.depth_gap_m,
                     "max_points": settings.max_points},
        "read_pcd_ms": summary(time_calls(lambda: read_pcd(pcd), n)),
        "segment_3_objects_ms": summary(time_calls(lambda: segment_objects(cloud, INTRINSICS, boxes, size, settings), n)),
        "segment_3_objects_and_whole_frame_ms": summary(
            time_calls(lambda: segment_objects(cloud, INTRINSICS, everything, size, settings), n)),
        "write_objects_pcd_ms": summary(time_calls(lambda: [write_pcd(o.points.xyz, o.points.rgb) for o in found], n)),
        "peak_memory_mb": round(peak / 1e6, 1),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cases.point_clouds", description=__doc__)
    parser.add_argument("--samples", type=int, default=20)
    print(json.dumps(point_clouds(parser.parse_args(argv).samples), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
