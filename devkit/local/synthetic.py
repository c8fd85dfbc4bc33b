"""Synthetic demo pictures: coloured shapes on neutral backgrounds (plain grey, a grey gradient, grey noise), so the
demo has something to look at when no photos are around. The shapes are data, so tests know where they are."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
from PIL import Image, ImageDraw

SIZE: Final = (320, 240)
RGB: Final = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 70, 220), "yellow": (245, 215, 40)}


@dataclass(frozen=True, slots=True)
class Shape:
    kind: str  # "ellipse", "rectangle" or "triangle" (apex at the top middle of the box)
    colour: str  # a key of RGB
    box: tuple[int, int, int, int]  # x_min, y_min, x_max, y_max (inclusive)


@dataclass(frozen=True, slots=True)
class Picture:
    name: str
    background: Callable[[], Image.Image]
    shapes: tuple[Shape, ...]


def _plain(grey: int) -> Callable[[], Image.Image]:
    return lambda: Image.new("RGB", SIZE, (grey, grey, grey))


def _grey(values: np.ndarray) -> Image.Image:
    return Image.fromarray(np.repeat(values[..., None], 3, axis=2).astype(np.uint8))


def _gradient() -> Image.Image:
    return _grey(np.broadcast_to(np.linspace(90, 235, SIZE[0]), (SIZE[1], SIZE[0])))


def _noise() -> Image.Image:
    return _grey(np.random.default_rng(7).normal(128, 30, (SIZE[1], SIZE[0])).clip(0, 255))


PICTURES: Final = (
    Picture("red-circle-green-square", _plain(210), (
        Shape("ellipse", "red", (30, 40, 130, 140)), Shape("rectangle", "green", (190, 110, 290, 210)))),
    Picture("blue-triangle-yellow-ellipse", _gradient, (
        Shape("triangle", "blue", (10, 30, 150, 170)), Shape("ellipse", "yellow", (180, 60, 300, 130)))),
    Picture("green-bar-on-noise", _noise, (Shape("rectangle", "green", (40, 90, 280, 150)),)),
    Picture("four-colours", _plain(60), (
        Shape("rectangle", "red", (20, 20, 90, 90)), Shape("ellipse", "blue", (220, 20, 300, 100)),
        Shape("triangle", "yellow", (60, 130, 160, 220)), Shape("rectangle", "green", (200, 150, 290, 220)))),
)


def draw(picture: Picture) -> Image.Image:
    image = picture.background()
    canvas = ImageDraw.Draw(image)
    for shape in picture.shapes:
        x0, y0, x1, y1 = shape.box
        fill = RGB[shape.colour]
        if shape.kind == "ellipse":
            canvas.ellipse(shape.box, fill=fill)
        elif shape.kind == "rectangle":
            canvas.rectangle(shape.box, fill=fill)
        else:
            canvas.polygon([((x0 + x1) // 2, y0), (x1, y1), (x0, y1)], fill=fill)
    return image


def write_pictures(folder: Path) -> list[Path]:
    """Write the synthetic pictures as PNG files into ``folder`` (created if needed); returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for picture in PICTURES:
        path = folder / f"{picture.name}.png"
        draw(picture).save(path, format="PNG")
        paths.append(path)
    return paths
