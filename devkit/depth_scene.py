"""Synthetic depth-camera scenes whose truth is known: a wall and box-shaped objects, seen by a pinhole camera.

Used by the tests of GetObjectPointClouds, the stand-in parent's depth camera, the local runner and the bench.
Every pixel's ray is cast against the scene (vectorised over pixels, one pass per object): the organised cloud is
what an ideal depth camera sees, then depth noise, flying pixels (random depths along the ray) and holes (NaN) are
added. Each point carries the label of what it hit (0 the wall, i >= 1 object i, -1 a flying pixel), so a test can
tell exactly which points an object should hold.

Coordinates: metres, camera frame (x right, y down, z forward), as PCD files from Viam cameras.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from module.vision.objects3d import Box2D, Intrinsics
from module.vision.pcd import write_pcd

WALL: int = 0
FLYING: int = -1


@dataclass(frozen=True, slots=True)
class Cuboid:
    """An axis-aligned box in the camera frame (metres)."""

    x: tuple[float, float]
    y: tuple[float, float]
    z: tuple[float, float]
    label: str = "object"

    @classmethod
    def behind_pixels(cls, intrinsics: Intrinsics, box: tuple[float, float, float, float], z_front: float, depth: float,
                      label: str) -> Cuboid:
        """The box whose front face, at ``z_front``, exactly covers the pixel box (x_min, y_min, x_max, y_max)."""
        x0, y0, x1, y1 = box
        to_x = lambda u: (u - 0.5 - intrinsics.ppx) / intrinsics.fx * z_front  # noqa: E731 (pixel edge -> metres)
        to_y = lambda v: (v - 0.5 - intrinsics.ppy) / intrinsics.fy * z_front  # noqa: E731
        return cls((to_x(x0), to_x(x1)), (to_y(y0), to_y(y1)), (z_front, z_front + depth), label)


@dataclass(frozen=True, slots=True)
class Scene:
    """An organised cloud (height * width points, row-major) and the truth for each point."""

    intrinsics: Intrinsics
    xyz: NDArray[np.float32]  # (H*W, 3), NaN rows are holes
    labels: NDArray[np.int32]  # (H*W,) WALL, object number (1-based) or FLYING
    clean: NDArray[np.float32]  # the same points without noise or flying pixels (holes included)
    clean_labels: NDArray[np.int32]  # what each pixel sees without flying pixels
    objects: tuple[Cuboid, ...]

    def pixel_box(self, number: int, margin: int = 0) -> Box2D:
        """The detection a perfect detector would give for object ``number`` (1-based): the pixel box of its
        visible pixels, widened by ``margin`` pixels (so it also covers background, as real boxes do)."""
        w, h = self.intrinsics.width, self.intrinsics.height
        rows, cols = np.divmod(np.flatnonzero(self.clean_labels == number), w)
        return Box2D(float(max(cols.min() - margin, 0)), float(max(rows.min() - margin, 0)),
                     float(min(cols.max() + 1 + margin, w)), float(min(rows.max() + 1 + margin, h)),
                     self.objects[number - 1].label, 0.9)

    def truth_points(self, number: int, box: Box2D) -> NDArray[np.float32]:
        """Noise-free points of object ``number`` whose pixel lies inside ``box``: what the object should hold."""
        w = self.intrinsics.width
        rows, cols = np.divmod(np.arange(self.labels.size), w)
        inside = (cols >= box.x_min) & (cols < box.x_max) & (rows >= box.y_min) & (rows < box.y_max)
        keep = inside & (self.clean_labels == number) & np.isfinite(self.clean).all(axis=1)
        return self.clean[keep]


def render(intrinsics: Intrinsics, objects: Sequence[Cuboid], *, wall_z: float = 3.0, noise_per_m2: float = 0.001,
           flying_share: float = 0.01, hole_share: float = 0.01, seed: int = 0) -> Scene:
    """Ray-cast the scene.

    Args:
        intrinsics: The camera (its width x height pixels become the cloud).
        objects: Boxes in front of the wall.
        wall_z: Depth of the wall filling the view.
        noise_per_m2: Depth noise standard deviation per metre squared of depth (structured-light cameras' noise
            grows with the square of depth): 0.001 is 1 mm at 1 m, 9 mm at 3 m.
        flying_share: Share of pixels replaced by a random depth between 0.3 m and the wall, along their ray.
        hole_share: Share of pixels without depth (NaN).
        seed: Random seed: the same arguments always give the same scene.
    """
    rng = np.random.default_rng(seed)
    w, h = intrinsics.width, intrinsics.height
    cols, rows = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    dx = ((cols - intrinsics.ppx) / intrinsics.fx).ravel()
    dy = ((rows - intrinsics.ppy) / intrinsics.fy).ravel()
    depth = np.full(dx.size, float(wall_z))
    labels = np.zeros(dx.size, dtype=np.int32)
    for number, cuboid in enumerate(objects, start=1):
        t = _ray_box_entry(dx, dy, cuboid)
        nearer = t < depth
        depth[nearer] = t[nearer]
        labels[nearer] = number
    clean = np.stack([dx * depth, dy * depth, depth], axis=1)
    noisy_depth = depth + rng.standard_normal(depth.size) * noise_per_m2 * depth ** 2
    flying = rng.random(depth.size) < flying_share
    noisy_depth[flying] = rng.uniform(0.3, wall_z, int(flying.sum()))
    xyz = np.stack([dx * noisy_depth, dy * noisy_depth, noisy_depth], axis=1)
    holes = rng.random(depth.size) < hole_share
    xyz[holes] = np.nan
    clean[holes] = np.nan
    noisy_labels = labels.copy()
    noisy_labels[flying] = FLYING
    return Scene(intrinsics, xyz.astype(np.float32), noisy_labels, clean.astype(np.float32), labels, tuple(objects))


def _ray_box_entry(dx: NDArray[np.float64], dy: NDArray[np.float64], box: Cuboid) -> NDArray[np.float64]:
    """Depth (z, since the rays are (dx, dy, 1)) where each ray enters the box; inf where it misses (slab test)."""
    t_in = np.full(dx.size, box.z[0])
    t_out = np.full(dx.size, box.z[1])
    for d, (lo, hi) in ((dx, box.x), (dy, box.y)):
        with np.errstate(divide="ignore", invalid="ignore"):
            a, b = lo / d, hi / d
        enter, leave = np.minimum(a, b), np.maximum(a, b)
        parallel = d == 0
        inside = (lo <= 0) & (0 <= hi)
        enter = np.where(parallel, -np.inf if inside else np.inf, enter)
        leave = np.where(parallel, np.inf if inside else -np.inf, leave)
        t_in = np.maximum(t_in, enter)
        t_out = np.minimum(t_out, leave)
    return np.where((t_in <= t_out) & (t_out > 0), t_in, np.inf)


# --- the pets photo as a depth camera ------------------------------------------------------------------------------

PETS_INTRINSICS = Intrinsics(width=512, height=430, fx=450.0, fy=450.0, ppx=255.5, ppy=214.5)
"""A pinhole camera for ../shared/testdata/images/pets.jpg (512 x 430)."""
PETS_DOGS: tuple[tuple[str, tuple[float, float, float, float], float, float], ...] = (
    # label, pixel box (x_min, y_min, x_max, y_max), front depth (m), object depth (m). The boxes are where the COCO
    # SSD of ../shared/testdata finds the two dogs (README section 3.1, normalised boxes times 512 x 430).
    # The first is a thin cut-out: its right side would face the camera nearly edge-on (3 pixel columns across
    # 30 cm for a 30 cm deep box), which the depth split and the outlier filter drop, so only its front is seen;
    # the second's side spans 18 columns and is part of its object.
    ("dog", (121.3, 49.0, 251.4, 291.5), 1.2, 0.06),
    ("dog", (343.6, 163.0, 495.1, 366.8), 1.8, 0.4),
)


def inset(box: tuple[float, float, float, float], share: float) -> tuple[float, float, float, float]:
    """``box`` shrunk by ``share`` of its width and height on every side."""
    x0, y0, x1, y1 = box
    dx, dy = (x1 - x0) * share, (y1 - y0) * share
    return (x0 + dx, y0 + dy, x1 - dx, y1 - dy)


def pets_scene(*, seed: int = 0, wall_z: float = 3.0) -> Scene:
    """A wall 3 m away and a box behind each dog the SSD finds in pets.jpg, covering the middle 80 % of its
    detection box (so each detection box also covers some wall, as real boxes do)."""
    objects = [Cuboid.behind_pixels(PETS_INTRINSICS, inset(box, 0.1), z, depth, label)
               for label, box, z, depth in PETS_DOGS]
    return render(PETS_INTRINSICS, objects, wall_z=wall_z, seed=seed)


def scene_pcd(scene: Scene, rgb_image: NDArray[np.uint8] | None = None) -> bytes:
    """The scene's cloud as a binary PCD (holes dropped), coloured from an (H, W, 3) image of the same size."""
    keep = np.isfinite(scene.xyz).all(axis=1)
    rgb = None
    if rgb_image is not None:
        pixels = rgb_image.reshape(-1, 3).astype(np.uint32)
        rgb = ((pixels[:, 0] << 16) | (pixels[:, 1] << 8) | pixels[:, 2])[keep]
    return write_pcd(scene.xyz[keep], rgb)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m devkit.depth_scene OUT.pcd``: the pets scene as a PCD, coloured from pets.jpg when it is there
    (config/depth.json plays it, with pets.jpg, as a depth camera in the local runner)."""
    import argparse

    from PIL import Image

    from devkit.testdata import TESTDATA

    parser = argparse.ArgumentParser(prog="python -m devkit.depth_scene", description=main.__doc__)
    parser.add_argument("out", type=Path, help="the PCD file to write")
    args = parser.parse_args(argv)
    photo = TESTDATA / "images" / "pets.jpg"
    pixels = np.asarray(Image.open(photo).convert("RGB")) if photo.is_file() else None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(scene_pcd(pets_scene(), pixels))
    i = PETS_INTRINSICS
    print(f"wrote {args.out}: a wall 3 m away and a box behind each dog of pets.jpg; intrinsic_parameters "
          f'{{"width_px": {i.width}, "height_px": {i.height}, "fx": {i.fx}, "fy": {i.fy}, "ppx": {i.ppx}, "ppy": {i.ppy}}}')
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
