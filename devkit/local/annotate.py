"""Draw what a vision service found onto a copy of the image: boxes tagged with label and confidence, and a banner
below the picture with the classifications and how long each service took on this image."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from PIL import Image, ImageColor, ImageDraw, ImageFont

RGB = tuple[int, int, int]
# Well-separated colours that stay visible on photos and on a white page (saturated, none near white or near
# black); text on them is black or white, whichever reads better.
_PALETTE: Final[tuple[RGB, ...]] = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240),
    (240, 50, 230), (210, 245, 60), (0, 128, 128), (170, 110, 40), (128, 0, 0), (128, 128, 0), (0, 0, 128),
    (255, 105, 180), (30, 144, 255), (255, 140, 0), (46, 139, 87))


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


def colour_for(label: str) -> RGB:
    """The same label always gets the same colour, in every picture and every run: a label that names a colour
    ("red", "green") is drawn in that colour, any other label in a palette colour chosen by a hash of its text."""
    try:
        named = ImageColor.getrgb(label.strip().lower())
        return named[0], named[1], named[2]
    except ValueError:
        return _PALETTE[zlib.crc32(label.encode()) % len(_PALETTE)]


def text_colour(background: RGB) -> RGB:
    """Black or white, whichever contrasts more with ``background`` (relative luminance, sRGB weights)."""
    luminance = 0.2126 * background[0] + 0.7152 * background[1] + 0.0722 * background[2]
    return (0, 0, 0) if luminance > 140 else (255, 255, 255)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: fixed-size bitmap font
        return ImageFont.load_default()


def _overlaps(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _wrap(pieces: Sequence[str], fits: Callable[[str], bool], separator: str = "  |  ") -> list[str]:
    """``pieces`` joined with ``separator`` into as few lines as fit (a piece too long alone gets its own line)."""
    lines: list[str] = []
    for piece in pieces:
        if lines and fits(lines[-1] + separator + piece):
            lines[-1] += separator + piece
        else:
            lines.append(piece)
    return lines


def annotate(image: Image.Image, boxes: Sequence[Box], labels: Sequence[Label],
             notes: Sequence[str] = ()) -> Image.Image:
    """A new RGB image with ``boxes`` drawn, and below it a banner with ``labels`` (classifications) and ``notes``
    (e.g. per-service times), wrapped to the picture's width; the input image is not changed."""
    out = image.convert("RGB")
    draw = ImageDraw.Draw(out)
    scale = max(out.size) / 640
    width = max(3, round(3 * scale))
    font = _font(max(12, round(16 * scale)))
    tags: list[tuple[int, int, int, int]] = []
    for box in sorted(boxes, key=lambda b: -b.confidence):  # the most confident first: its tag gets the best place
        colour = colour_for(box.label)
        draw.rectangle((box.x_min, box.y_min, box.x_max, box.y_max), outline=colour, width=width)
    for box in sorted(boxes, key=lambda b: -b.confidence):  # tags after all boxes, so no box line crosses a tag
        colour = colour_for(box.label)
        text = box.text or f"{box.label} {box.confidence:.2f}"
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        tag_w, tag_h = int(right - left) + 2 * width, int(bottom - top) + 2 * width
        x = max(0, min(box.x_min, out.width - tag_w))
        # above the box; inside its top edge if that is off the picture or on another tag; then below it
        places = [box.y_min - tag_h, box.y_min, box.y_max - tag_h]
        candidates = [(x, y, x + tag_w, y + tag_h) for y in places if 0 <= y <= out.height - tag_h]
        rect = next((r for r in candidates if not any(_overlaps(r, t) for t in tags)),
                    candidates[0] if candidates else (x, 0, x + tag_w, tag_h))
        tags.append(rect)
        draw.rectangle(rect, fill=colour)
        draw.text((rect[0] + width - left, rect[1] + width - top), text, fill=text_colour(colour), font=font)
    room = out.width - 4 * width

    def fits(line: str) -> bool:
        return draw.textlength(line, font=font) <= room

    lines = _wrap([f"{c.label} {c.confidence:.2f}" for c in labels], fits)
    notes_from = len(lines)
    lines += _wrap(list(notes), fits)
    if lines:  # a banner below the image, so nothing of the picture is covered
        boxes_of = [draw.textbbox((0, 0), line, font=font) for line in lines]
        line_h = max(int(b[3] - b[1]) for b in boxes_of) + 2 * width
        banner = Image.new("RGB", (out.width, out.height + line_h * len(lines) + 2 * width), (24, 24, 24))
        banner.paste(out, (0, 0))
        pen = ImageDraw.Draw(banner)
        for i, (line, (left, top, _, _)) in enumerate(zip(lines, boxes_of)):
            grey = (255, 255, 255) if i < notes_from else (190, 190, 190)
            pen.text((2 * width - left, out.height + width + i * line_h + width - top), line, fill=grey, font=font)
        out = banner
    return out


def save_annotated(source: Path, target: Path, boxes: Sequence[Box], labels: Sequence[Label],
                   notes: Sequence[str] = ()) -> Path:
    """Annotate the image file ``source`` and write it to ``target`` (PNG, or JPEG for a .jpg target)."""
    with Image.open(source) as image:
        annotated = annotate(image, boxes, labels, notes)
    if target.suffix.lower() in (".jpg", ".jpeg"):
        annotated.save(target, format="JPEG", quality=90)
    else:
        annotated.save(target, format="PNG", compress_level=3)
    return target
