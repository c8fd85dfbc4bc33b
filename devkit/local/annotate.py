"""Draw what a vision service found onto a copy of the image: boxes with label and confidence, classifications as a
text banner below it."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from PIL import Image, ImageDraw, ImageFont

_PALETTE: Final = ((255, 56, 56), (72, 219, 251), (255, 159, 243), (29, 209, 161), (254, 202, 87), (84, 160, 255),
                   (255, 107, 129), (95, 39, 205), (0, 210, 211), (16, 172, 132))


@dataclass(frozen=True, slots=True)
class Box:
    label: str
    confidence: float
    x_min: int
    y_min: int
    x_max: int
    y_max: int
    text: str = ""  # drawn instead of "label confidence" when set (3D objects: "label 1.20 m")


@dataclass(frozen=True, slots=True)
class Label:
    label: str
    confidence: float


def colour_for(label: str) -> tuple[int, int, int]:
    """The same label always gets the same colour."""
    return _PALETTE[zlib.crc32(label.encode()) % len(_PALETTE)]


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: fixed-size bitmap font
        return ImageFont.load_default()


def annotate(image: Image.Image, boxes: Sequence[Box], labels: Sequence[Label]) -> Image.Image:
    """A new RGB image with ``boxes`` drawn and ``labels`` in a banner below it (the input image is not changed)."""
    out = image.convert("RGB")
    draw = ImageDraw.Draw(out)
    scale = max(out.size) / 640
    width = max(2, round(3 * scale))
    font = _font(max(12, round(16 * scale)))
    for box in boxes:
        colour = colour_for(box.label)
        draw.rectangle((box.x_min, box.y_min, box.x_max, box.y_max), outline=colour, width=width)
        text = box.text or f"{box.label} {box.confidence:.2f}"
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        tag_h = bottom - top + 2 * width
        y = box.y_min - tag_h if box.y_min - tag_h >= 0 else box.y_min  # above the box, else inside it
        draw.rectangle((box.x_min, y, box.x_min + right - left + 2 * width, y + tag_h), fill=colour)
        draw.text((box.x_min + width - left, y + width - top), text, fill=(0, 0, 0), font=font)
    if labels:  # a banner below the image, so nothing of the picture is covered
        text = "  |  ".join(f"{c.label} {c.confidence:.2f}" for c in labels)
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        banner = Image.new("RGB", (out.width, out.height + int(bottom - top) + 4 * width), (0, 0, 0))
        banner.paste(out, (0, 0))
        ImageDraw.Draw(banner).text((2 * width - left, out.height + 2 * width - top), text, fill=(255, 255, 255),
                                    font=font)
        out = banner
    return out


def save_annotated(source: Path, target: Path, boxes: Sequence[Box], labels: Sequence[Label]) -> Path:
    """Annotate the image file ``source`` and write it as PNG to ``target``."""
    with Image.open(source) as image:
        annotate(image, boxes, labels).save(target, format="PNG", compress_level=3)
    return target
