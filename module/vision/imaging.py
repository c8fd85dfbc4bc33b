"""Image decoding and resizing into model-input pixels.

Pure helpers (no gRPC): bytes + mime type -> lazily decoded Pillow image -> RGB uint8 array at the model size,
plus the mapping (:class:`Letterbox`) needed to bring boxes back to the original image.

Conventions that match Viam's mlmodel vision service and the reference results in ``shared/testdata``:
the image is converted with ``convert("RGB")`` (alpha is dropped, not composited) and then stretched with Pillow
``BILINEAR`` straight to the model size. EXIF orientation is not applied (Viam does not either).

Supported mime types: ``image/jpeg``, ``image/png``, ``image/bmp``, ``image/vnd.viam.rgba`` (each optionally with a
``+lazy`` suffix and ``;`` parameters) and ``""`` (format sniffed from the bytes). GIF, TIFF, WebP and
``image/vnd.viam.dep`` are refused on purpose: Viam cameras do not produce them for vision and every extra Pillow
plugin is extra attack surface for untrusted bytes.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from typing import Final

import numpy as np
import PIL.Image
import PIL.JpegImagePlugin
from numpy.typing import NDArray

from module.errors import InvalidInputError, ModuleError, ResourceExhaustedError, describe_exception, plain_text

RGBA_MAGIC: Final = b"RGBA"
"""``image/vnd.viam.rgba``: this magic, width and height as uint32 big-endian, then raw RGBA8 rows."""
RGBA_HEADER: Final = struct.Struct(">4sII")

MAX_PIXELS: Final = 50_000_000
"""Largest image (width * height) this module decodes; larger ones get ResourceExhaustedError (about 200 MB RGBA)."""

# Pillow's own guard is set to the same limit (process-wide, on purpose): it raises DecompressionBombError above
# 2 * MAX_IMAGE_PIXELS while parsing the header, before any pixel is decoded. Between 1x and 2x Pillow only emits a
# DecompressionBombWarning and open_image() then refuses the image itself, also from the header. The warning is not
# filtered here: a global filter is a side effect on every importer (and catch_warnings() is not thread-safe).
PIL.Image.MAX_IMAGE_PIXELS = MAX_PIXELS

MIME_JPEG: Final = "image/jpeg"
MIME_PNG: Final = "image/png"
MIME_BMP: Final = "image/bmp"
MIME_RGBA: Final = "image/vnd.viam.rgba"
# The declared format is tried first, then the others: clients mislabel images (the Python SDK's VisionClient
# sends every image as image/jpeg), and the bytes themselves say unambiguously which decoder fits.
_PIL_FORMATS: Final = {MIME_JPEG: ("JPEG", "PNG", "BMP"), MIME_PNG: ("PNG", "JPEG", "BMP"),
                       MIME_BMP: ("BMP", "JPEG", "PNG"), "": ("JPEG", "PNG", "BMP")}
SUPPORTED_MIME_TYPES: Final = (MIME_JPEG, MIME_PNG, MIME_BMP, MIME_RGBA)
_SUPPORTED_TEXT: Final = ", ".join(SUPPORTED_MIME_TYPES) + ' (each optionally with "+lazy"), or "" to detect'
_DRAFT_MIN_FACTOR: Final = 2
_SIXTEEN_BIT_MODES: Final = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})


def normalize_mime(mime_type: str) -> str:
    """Canonical form of a mime type: lower case, without parameters and without a ``+lazy`` suffix.

    Args:
        mime_type: For example ``"Image/JPEG+lazy; q=1"``.

    Returns:
        For example ``"image/jpeg"``; ``""`` stays ``""``.
    """
    mime = mime_type.split(";", 1)[0].strip().lower()
    return mime.removesuffix("+lazy")


@dataclass(frozen=True, slots=True)
class Letterbox:
    """How a pixel of the original image maps into the model input: ``model_px = orig_px * scale + pad``.

    Coordinates are continuous pixel-edge coordinates (0 = left edge, W = right edge), as Pillow's resize uses.
    A plain stretch has ``pad_x == pad_y == 0`` and ``scale_x = W_model / W_orig``, ``scale_y = H_model / H_orig``.
    """

    scale_x: float
    scale_y: float
    pad_x: float
    pad_y: float


IDENTITY: Final = Letterbox(1.0, 1.0, 0.0, 0.0)


def open_image(data: bytes, mime_type: str = "") -> PIL.Image.Image:
    """Parse an image header without decoding the pixels (decoding happens in :func:`to_model_input`).

    Args:
        data: The encoded image.
        mime_type: One of the supported mime types (see the module docstring) or ``""`` to detect JPEG, PNG,
            BMP or Viam RGBA from the bytes.

    Returns:
        A lazily loaded Pillow image of at least 1x1 and at most ``MAX_PIXELS`` pixels.

    Raises:
        InvalidInputError: Unsupported mime type, empty, unrecognised, corrupt or zero-size data, or data that
            does not match the declared mime type.
        ResourceExhaustedError: The header declares more than ``MAX_PIXELS`` pixels.
    """
    mime = normalize_mime(mime_type)
    if mime != MIME_RGBA and mime not in _PIL_FORMATS:
        raise InvalidInputError(f"unsupported image mime type {mime_type!r}; supported: {_SUPPORTED_TEXT}")
    if not data:
        raise InvalidInputError(f"image data is empty (mime type {mime_type!r})")
    if mime == MIME_RGBA or data[:4] == RGBA_MAGIC:
        return _open_rgba(data)
    what = f"{mime} (or JPEG, PNG, BMP)" if mime else "JPEG, PNG or BMP"
    try:
        img = PIL.Image.open(io.BytesIO(data), formats=_PIL_FORMATS[mime])
    except PIL.Image.DecompressionBombError as exc:
        raise ResourceExhaustedError(f"image is larger than the limit of {MAX_PIXELS} pixels: {plain_text(str(exc))}") from None
    except MemoryError:
        raise ResourceExhaustedError("not enough memory to open the image") from None
    except PIL.UnidentifiedImageError:
        raise InvalidInputError(f"cannot decode {len(data)} bytes as {what}: no known image header") from None
    except Exception as exc:  # noqa: BLE001 - any decoder failure is the caller's bad data
        raise InvalidInputError(f"cannot decode {len(data)} bytes as {what}: {describe_exception(exc)}") from None
    _check_size(img.width, img.height)
    return img


def _open_rgba(data: bytes) -> PIL.Image.Image:
    """Wrap ``image/vnd.viam.rgba`` bytes in a Pillow image without copying the pixels."""
    if len(data) < RGBA_HEADER.size:
        raise InvalidInputError(
            f"image/vnd.viam.rgba data has {len(data)} bytes, shorter than its {RGBA_HEADER.size}-byte header"
        )
    magic, width, height = RGBA_HEADER.unpack_from(data)
    if magic != RGBA_MAGIC:
        raise InvalidInputError(f"image/vnd.viam.rgba data must start with {RGBA_MAGIC!r}, got {magic!r}")
    _check_size(width, height)
    expected = RGBA_HEADER.size + 4 * width * height
    if len(data) != expected:
        raise InvalidInputError(
            f"image/vnd.viam.rgba header says {width}x{height} ({expected} bytes with header), got {len(data)} bytes"
        )
    view = memoryview(data)[RGBA_HEADER.size :]
    # Any buffer works at runtime (Pillow maps it); the stubs only list bytes-like types.
    return PIL.Image.frombuffer("RGBA", (width, height), view, "raw", "RGBA", 0, 1)  # type: ignore[arg-type]


def _check_size(width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise InvalidInputError(f"image has zero size ({width}x{height})")
    if width * height > MAX_PIXELS:
        raise ResourceExhaustedError(
            f"image is {width}x{height} = {width * height} pixels, over the limit of {MAX_PIXELS}"
        )


def to_model_input(
    img: PIL.Image.Image, size: tuple[int, int] | None, *, letterbox: bool = False, fill: int = 0,
    center_crop: bool = False,
) -> tuple[NDArray[np.uint8], Letterbox]:
    """Decode, convert to RGB and resize an image for a model.

    For a JPEG at least twice the target in both dimensions the decoder is asked for a reduced-size DCT decode
    (``img.draft``, scale 1/2, 1/4 or 1/8, never below the target), then BILINEAR finishes the resize. This is
    1.7-2x faster for 720p/1080p frames but changes pixels slightly versus a full decode: mean absolute difference
    0.2-1 grey level on the test photos, 2.0 at worst (fine grass texture shrunk to 96x96); see
    tests/test_imaging.py. A 640x480 frame to 300x300 is below the 2x rule (Pillow would not reduce it either).
    ``img`` is consumed: it is loaded (and possibly drafted) in place.

    Args:
        img: An image from :func:`open_image` (or any Pillow image).
        size: Target ``(width, height)``, or None to keep the image size.
        letterbox: Keep the aspect ratio, centre the image and pad with ``fill`` instead of stretching. The
            content size is ``round(side * scale)`` and the left/top pad half the spare pixels rounded down, which
            is Ultralytics' own rule (``round(d - 0.1)`` of half an integer).
        fill: Grey level of the letterbox padding (Ultralytics pads with 114).
        center_crop: Cut the largest centred region with the model's aspect ratio, then resize it (what Teachable
            Machine's sample code does); boxes map back through the crop.

    Returns:
        The ``H x W x 3`` uint8 RGB array and the mapping from original to model pixels.

    Raises:
        InvalidInputError: The pixel data is truncated or corrupt, or the mode cannot be converted to RGB.
        ResourceExhaustedError: Out of memory while decoding.
    """
    orig_w, orig_h = img.size
    if size is None:
        return _to_rgb_array(_load(img, None)[0]), IDENTITY
    target_w, target_h = int(size[0]), int(size[1])
    if target_w <= 0 or target_h <= 0:
        raise ValueError(f"target size must be positive, got {size}")
    if center_crop:
        return _center_crop(img, target_w, target_h)
    if letterbox:
        scale = min(target_w / orig_w, target_h / orig_h)
        content = (max(1, round(orig_w * scale)), max(1, round(orig_h * scale)))
    else:
        content = (target_w, target_h)
    rgb, box = _load(img, content)
    if rgb.size != content:
        # After a draft decode, `box` is the whole original image in reduced pixels (its edge may be fractional).
        rgb = rgb.resize(content, PIL.Image.Resampling.BILINEAR, box=box)
    pixels = _to_rgb_array(rgb)
    scale_x, scale_y = content[0] / orig_w, content[1] / orig_h
    if not letterbox or content == (target_w, target_h):
        return pixels, Letterbox(scale_x, scale_y, 0.0, 0.0)
    pad_x, pad_y = (target_w - content[0]) // 2, (target_h - content[1]) // 2
    canvas = np.full((target_h, target_w, 3), fill, dtype=np.uint8)
    canvas[pad_y : pad_y + content[1], pad_x : pad_x + content[0]] = pixels
    return canvas, Letterbox(scale_x, scale_y, float(pad_x), float(pad_y))


def _center_crop(img: PIL.Image.Image, target_w: int, target_h: int) -> tuple[NDArray[np.uint8], Letterbox]:
    """The centred region with the target's aspect ratio, resized to the target."""
    orig_w, orig_h = img.size
    if orig_w * target_h > orig_h * target_w:  # wider than the target: cut the sides
        crop_w, crop_h = max(1, round(orig_h * target_w / target_h)), orig_h
    else:
        crop_w, crop_h = orig_w, max(1, round(orig_w * target_h / target_w))
    x0, y0 = (orig_w - crop_w) // 2, (orig_h - crop_h) // 2
    # Ask the decoder for a size whose crop region still covers the target (a draft never goes below it).
    request = (max(1, -(-target_w * orig_w // crop_w)), max(1, -(-target_h * orig_h // crop_h)))
    rgb, drafted = _load(img, request)
    if drafted is None:
        region = (float(x0), float(y0), float(x0 + crop_w), float(y0 + crop_h))
    else:  # the reduced image covers the original with the box `drafted`
        sx, sy = (drafted[2] - drafted[0]) / orig_w, (drafted[3] - drafted[1]) / orig_h
        region = (drafted[0] + x0 * sx, drafted[1] + y0 * sy, drafted[0] + (x0 + crop_w) * sx,
                  drafted[1] + (y0 + crop_h) * sy)
    resized = rgb.resize((target_w, target_h), PIL.Image.Resampling.BILINEAR, box=region)
    scale_x, scale_y = target_w / crop_w, target_h / crop_h
    return _to_rgb_array(resized), Letterbox(scale_x, scale_y, -x0 * scale_x, -y0 * scale_y)


def _load(
    img: PIL.Image.Image, target: tuple[int, int] | None
) -> tuple[PIL.Image.Image, tuple[float, float, float, float] | None]:
    """Decode the pixels (reduced JPEG draft when worthwhile) and convert to RGB; map failures to our errors.

    Returns:
        The RGB image and, after a draft, the region of it that covers the original image (else None).
    """
    box: tuple[float, float, float, float] | None = None
    try:
        if (
            target is not None
            and isinstance(img, PIL.JpegImagePlugin.JpegImageFile)
            and img.width >= _DRAFT_MIN_FACTOR * target[0]
            and img.height >= _DRAFT_MIN_FACTOR * target[1]
        ):
            drafted = img.draft("RGB", target)
            if drafted is not None:
                x0, y0, x1, y1 = drafted[1]
                box = (float(x0), float(y0), float(x1), float(y1))
        img.load()
        return _convert_rgb(img), box
    except ModuleError:
        raise
    except MemoryError:
        raise ResourceExhaustedError("not enough memory to decode the image") from None
    except Exception as exc:  # noqa: BLE001 - truncated/corrupt pixel data
        raise InvalidInputError(f"cannot decode image pixels: {describe_exception(exc)}") from None


def _convert_rgb(img: PIL.Image.Image) -> PIL.Image.Image:
    """``convert("RGB")`` (alpha dropped), except that 16-bit greyscale is scaled to 8 bits instead of clipped."""
    if img.mode == "RGB":
        return img
    if img.mode in _SIXTEEN_BIT_MODES:
        grey = (np.asarray(img).astype(np.uint16, copy=False) >> 8).astype(np.uint8)
        return PIL.Image.fromarray(np.repeat(grey[:, :, None], 3, axis=2))  # HxWx3 uint8 -> mode RGB
    try:
        if img.mode == "P" and "transparency" in img.info:
            return img.convert("RGBA").convert("RGB")  # same colours, without Pillow's palette-transparency warning
        return img.convert("RGB")
    except ValueError:
        try:
            return img.convert("RGBA").convert("RGB")
        except ValueError:
            raise InvalidInputError(f"cannot convert image mode {img.mode!r} to RGB") from None


def _to_rgb_array(img: PIL.Image.Image) -> NDArray[np.uint8]:
    return np.asarray(img, dtype=np.uint8)
