"""Tests for module.vision.imaging: mime handling, decoding, modes, resize/letterbox, draft, limits, fuzzing."""

from __future__ import annotations

import contextlib
import io
import struct
import time
import warnings
import zlib
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from devkit.standin.parent import encode_rgba
from devkit.testdata import TESTDATA, require_testdata
from module.errors import InvalidInputError, ResourceExhaustedError
from module.vision.boxes import boxes_to_original
from module.vision.imaging import (
    MAX_PIXELS,
    Letterbox,
    normalize_mime,
    open_image,
    to_model_input,
)

IMAGES = TESTDATA / "images"
PHOTOS = sorted(p.name for p in IMAGES.glob("*")) if IMAGES.is_dir() else ["<missing>"]


def gradient(width: int = 64, height: int = 48) -> np.ndarray:
    """A smooth RGB test pattern (compresses well, survives JPEG)."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 255 // max(1, width - 1), y * 255 // max(1, height - 1), (x + y) % 256], -1).astype(np.uint8)


def encode(arr_or_img: np.ndarray | Image.Image, fmt: str, **kw: object) -> bytes:
    img = arr_or_img if isinstance(arr_or_img, Image.Image) else Image.fromarray(arr_or_img)
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def decode(data: bytes, mime: str = "", size: tuple[int, int] | None = None) -> np.ndarray:
    return to_model_input(open_image(data, mime), size)[0]


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims width x height (8-bit RGB) but carries almost no data: a cheap decompression bomb."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


# --- mime types ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("image/jpeg", "image/jpeg"),
        ("IMAGE/JPEG", "image/jpeg"),
        ("image/jpeg+lazy", "image/jpeg"),
        ("image/vnd.viam.rgba+lazy", "image/vnd.viam.rgba"),
        ("image/png; charset=binary", "image/png"),
        (" Image/PNG+LAZY ; x=1", "image/png"),
        ("", ""),
    ],
)
def test_normalize_mime(raw: str, expected: str) -> None:
    assert normalize_mime(raw) == expected


LOSSLESS = {"image/png": "PNG", "image/bmp": "BMP"}


@pytest.mark.parametrize("suffix", ["", "+lazy"])
@pytest.mark.parametrize("mime", ["image/png", "image/bmp", "image/vnd.viam.rgba", "image/jpeg"])
@pytest.mark.parametrize("declare", [True, False], ids=["declared", "sniffed"])
def test_every_mime_decodes(mime: str, suffix: str, declare: bool) -> None:
    arr = gradient()
    if mime == "image/vnd.viam.rgba":
        data = encode_rgba(arr)
    elif mime == "image/jpeg":
        data = encode(arr, "JPEG", quality=95)
    else:
        data = encode(arr, LOSSLESS[mime])
    out = decode(data, mime + suffix if declare else "")
    assert out.shape == (48, 64, 3) and out.dtype == np.uint8
    if mime == "image/jpeg":
        expected = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        np.testing.assert_array_equal(out, expected)
    else:
        np.testing.assert_array_equal(out, arr)


@pytest.mark.parametrize("mime", ["image/gif", "image/vnd.viam.dep", "text/plain", "image/webp", "image/tiff"])
def test_unsupported_mime(mime: str) -> None:
    data = encode(gradient(), "GIF") if mime == "image/gif" else encode(gradient(), "PNG")
    with pytest.raises(InvalidInputError) as err:
        open_image(data, mime)
    assert mime in str(err.value) and "image/jpeg" in str(err.value) and "image/vnd.viam.rgba" in str(err.value)


def test_sniffing_refuses_other_formats() -> None:
    with pytest.raises(InvalidInputError):
        decode(encode(gradient(), "GIF"))


@pytest.mark.parametrize(("fmt", "declared"), [("PNG", "image/jpeg"), ("JPEG", "image/png"), ("BMP", "image/jpeg")])
def test_mislabelled_image_is_decoded_by_its_content(fmt: str, declared: str) -> None:
    # The Python SDK's VisionClient labels every image image/jpeg; the bytes say which decoder fits.
    img = open_image(encode(gradient(), fmt), declared)
    assert img.format == fmt and img.size == (64, 48)


def test_mislabelled_unsupported_format_is_refused_naming_the_declared_type() -> None:
    with pytest.raises(InvalidInputError, match="image/jpeg"):
        open_image(encode(gradient(), "GIF"), "image/jpeg")


def test_open_is_lazy() -> None:
    img = open_image(encode(gradient(), "PNG"), "image/png")
    assert img.size == (64, 48)
    assert img.tile  # pixels not decoded yet: Pillow empties `tile` on load()


# --- modes -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["RGBA", "L", "P", "LA", "1", "RGB"])
def test_png_modes_to_rgb_like_convert(mode: str) -> None:
    src = Image.fromarray(gradient()).convert("RGBA")
    alpha = np.asarray(src).copy()
    alpha[..., 3] = np.arange(64, dtype=np.uint8)[None, :] * 4  # varied alpha must simply be dropped
    img = Image.fromarray(alpha, "RGBA").convert(mode)
    data = encode(img, "PNG")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Pillow: "Palette images with Transparency ..." (mode P)
        expected = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = decode(data, "image/png")
    assert not caught, [str(w.message) for w in caught]
    np.testing.assert_array_equal(out, expected)
    if mode == "RGBA":
        np.testing.assert_array_equal(out, gradient())  # alpha dropped, colour not premultiplied


def test_rgba_alpha_dropped() -> None:
    rgba = np.zeros((2, 3, 4), dtype=np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2], rgba[..., 3] = 10, 20, 30, 0
    out = decode(encode_rgba(rgba), "image/vnd.viam.rgba")
    assert out.shape == (2, 3, 3) and (out == [10, 20, 30]).all()


def test_sixteen_bit_grey_is_scaled_not_clipped() -> None:
    values = np.array([[0, 255, 256, 32768, 65535]], dtype=np.uint16)
    data = encode(Image.fromarray(values), "PNG")
    assert Image.open(io.BytesIO(data)).mode == "I;16"
    out = decode(data, "image/png")
    np.testing.assert_array_equal(out[..., 0], [[0, 0, 1, 128, 255]])
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()


def test_cmyk_jpeg_to_rgb() -> None:
    data = encode(Image.fromarray(gradient()).convert("CMYK"), "JPEG", quality=95)
    out = decode(data, "image/jpeg")
    np.testing.assert_array_equal(out, np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))


def test_grey_jpeg_with_draft() -> None:
    data = encode(Image.fromarray(gradient(640, 480)).convert("L"), "JPEG", quality=95)
    out = decode(data, "image/jpeg", (100, 100))
    assert out.shape == (100, 100, 3)
    assert (out[..., 0] == out[..., 2]).all()


# --- resize, letterbox, draft ----------------------------------------------------------------------------------


def reference_resize(data: bytes, size: tuple[int, int]) -> np.ndarray:
    """testdata/README.md section 2: convert('RGB') then BILINEAR straight to the model size."""
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB").resize(size, Image.Resampling.BILINEAR))


@pytest.mark.parametrize("name", PHOTOS)
@pytest.mark.parametrize("size", [(300, 300), (224, 224), (96, 96)])
def test_photos_match_reference_pipeline(name: str, size: tuple[int, int]) -> None:
    data = (require_testdata(f"images/{name}") / "images" / name).read_bytes()
    img = open_image(data)
    orig = img.size
    drafted = img.format == "JPEG" and orig[0] >= 2 * size[0] and orig[1] >= 2 * size[1]
    out, lb = to_model_input(img, size)
    ref = reference_resize(data, size)
    assert out.shape == (size[1], size[0], 3)
    assert lb == Letterbox(size[0] / orig[0], size[1] / orig[1], 0.0, 0.0)
    diff = np.abs(out.astype(np.int16) - ref)
    if drafted:  # the draft trade-off: slightly different pixels, same picture (worst here: pets.jpg -> 96x96, 2.0)
        assert diff.mean() < 2.5, diff.mean()
        assert np.percentile(diff, 99) <= 12
    else:
        assert diff.max() == 0


def test_draft_only_when_twice_the_target() -> None:
    data = encode(gradient(1000, 500), "JPEG", quality=90)
    img = open_image(data)
    out, _ = to_model_input(img, (300, 300))  # 500 < 2 * 300: no draft
    assert img.size == (1000, 500)
    np.testing.assert_array_equal(out, reference_resize(data, (300, 300)))
    img = open_image(data)
    out, _ = to_model_input(img, (200, 200))  # 1000 // 200, 500 // 200 -> scale 2
    assert img.size == (500, 250)
    assert np.abs(out.astype(np.int16) - reference_resize(data, (200, 200))).mean() < 1.5


def test_draft_with_odd_size_covers_whole_image() -> None:
    """641x481 at DCT scale 1/2 decodes 321x241 pixels covering 320.5x240.5; the edge must not shift the image."""
    arr = np.zeros((481, 641, 3), dtype=np.uint8)
    arr[:, 320:] = 255  # right half white
    data = encode(arr, "JPEG", quality=95)
    img = open_image(data)
    out, _ = to_model_input(img, (100, 100))
    assert img.size == (161, 121)  # DCT scale 1/4: 641/4 = 160.25 columns of the original
    ref = reference_resize(data, (100, 100))
    assert np.abs(out.astype(np.int16) - ref).mean() < 1.5


def box_on_canvas(size: tuple[int, int], box: tuple[int, int, int, int]) -> np.ndarray:
    arr = np.zeros((size[1], size[0], 3), dtype=np.uint8)
    arr[box[1] : box[3], box[0] : box[2]] = 255
    return arr


def find_box(arr: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(arr[..., 0] > 127)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float64)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
@pytest.mark.parametrize(
    ("orig_size", "model_size", "letterbox"),
    [
        ((640, 360), (300, 300), True),
        ((360, 640), (300, 300), True),
        ((1280, 720), (320, 320), True),  # JPEG: drafted at 1/2
        ((1280, 720), (320, 240), False),
        ((640, 360), (320, 320), False),
        ((300, 300), (300, 300), True),
    ],
)
def test_letterbox_round_trip(
    fmt: str, orig_size: tuple[int, int], model_size: tuple[int, int], letterbox: bool
) -> None:
    truth = (orig_size[0] // 5, orig_size[1] // 4, orig_size[0] * 3 // 5, orig_size[1] * 4 // 5)
    data = encode(box_on_canvas(orig_size, truth), fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    out, lb = to_model_input(open_image(data), model_size, letterbox=letterbox)
    assert out.shape == (model_size[1], model_size[0], 3)
    if letterbox:
        assert min(lb.scale_x, lb.scale_y) == pytest.approx(max(lb.scale_x, lb.scale_y), rel=0.01)
        assert lb.pad_x == 0 or lb.pad_y == 0
    model_box = find_box(out)
    for normalized in (False, True):
        given_box = model_box / np.array(model_size * 2) if normalized else model_box
        back = boxes_to_original(
            given_box[None], normalized=normalized, model_size=model_size, letterbox=lb, original_size=orig_size
        )[0]
        tolerance = 1.0 / min(lb.scale_x, lb.scale_y)  # one model pixel, in original pixels
        np.testing.assert_allclose(back, truth, atol=max(1.0, tolerance))
    if letterbox and (lb.pad_x or lb.pad_y):
        assert out[0, 0].tolist() == [0, 0, 0] and out[-1, -1].tolist() == [0, 0, 0]


def test_size_none_keeps_image() -> None:
    out, lb = to_model_input(open_image(encode(gradient(), "PNG")), None)
    assert out.shape == (48, 64, 3) and lb == Letterbox(1.0, 1.0, 0.0, 0.0)


def test_bad_target_size() -> None:
    with pytest.raises(ValueError):
        to_model_input(open_image(encode(gradient(), "PNG")), (0, 10))


# --- bad data and limits ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("mime", ["", "image/jpeg", "image/png", "image/bmp", "image/vnd.viam.rgba"])
def test_empty_bytes(mime: str) -> None:
    with pytest.raises(InvalidInputError, match="empty"):
        open_image(b"", mime)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "BMP"])
@pytest.mark.parametrize("keep", [0.5, 0.9, 20])
def test_truncated(fmt: str, keep: float) -> None:
    data = encode(gradient(256, 256) ^ np.uint8(0x5A), fmt)
    cut = data[: int(len(data) * keep)] if keep < 1 else data[: int(keep)]
    with pytest.raises(InvalidInputError):
        decode(cut, "", (32, 32))


def test_corrupt_png_data() -> None:
    data = bytearray(encode(gradient(256, 256), "PNG"))
    start = data.index(b"IDAT") + 40
    data[start : start + 20] = b"\xff" * 20
    with pytest.raises(InvalidInputError):
        decode(bytes(data), "image/png")


def test_corrupt_jpeg_header() -> None:
    data = bytearray(encode(gradient(256, 256), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 4 : sof + 10] = b"\x00" * 6  # precision, height, width, components -> 0
    with pytest.raises(InvalidInputError):
        decode(bytes(data), "image/jpeg")


def test_garbage() -> None:
    with pytest.raises(InvalidInputError, match="cannot decode"):
        open_image(b"this is not an image at all", "")


@pytest.mark.parametrize(("width", "height"), [(0, 10), (10, 0), (0, 0)])
def test_rgba_zero_size(width: int, height: int) -> None:
    with pytest.raises(InvalidInputError, match="zero size"):
        open_image(b"RGBA" + struct.pack(">II", width, height), "image/vnd.viam.rgba")


@pytest.mark.parametrize("delta", [-1, 1, -400])
def test_rgba_length_mismatch(delta: int) -> None:
    data = encode_rgba(gradient(10, 10))
    data = data[:delta] if delta < 0 else data + b"\x00" * delta
    with pytest.raises(InvalidInputError, match="10x10"):
        open_image(data, "image/vnd.viam.rgba")


def test_rgba_short_header_and_wrong_magic() -> None:
    with pytest.raises(InvalidInputError, match="header"):
        open_image(b"RGBA\x00\x00", "image/vnd.viam.rgba")
    with pytest.raises(InvalidInputError, match="RGBA"):
        open_image(b"RGBX" + b"\x00" * 20, "image/vnd.viam.rgba")


def test_png_zero_width() -> None:
    with pytest.raises(InvalidInputError):
        decode(png_header_only(0, 10), "image/png")


@pytest.mark.parametrize(("width", "height"), [(100_000, 100_000), (8_000, 7_000), (MAX_PIXELS + 1, 1)])
def test_png_decompression_bomb(width: int, height: int) -> None:
    data = png_header_only(width, height)
    assert len(data) < 200
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # Pillow warns between 1x and 2x the limit
        with pytest.raises(ResourceExhaustedError, match="limit"):
            open_image(data, "")


def test_jpeg_decompression_bomb() -> None:
    data = bytearray(encode(gradient(16, 16), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", 60_000, 60_000)
    with pytest.raises(ResourceExhaustedError):
        open_image(bytes(data), "image/jpeg")


def test_rgba_over_limit_checked_before_length() -> None:
    with pytest.raises(ResourceExhaustedError):
        open_image(b"RGBA" + struct.pack(">II", 10_000, 10_000) + b"\x00" * 16, "image/vnd.viam.rgba")


def test_limit_allows_large_but_legal_header() -> None:
    img = open_image(png_header_only(7_000, 7_000), "image/png")  # 49M pixels: allowed, lazily not decoded
    assert img.size == (7_000, 7_000)


# --- fuzzing ---------------------------------------------------------------------------------------------------

MIMES = ["", "image/jpeg", "image/png", "image/bmp", "image/vnd.viam.rgba", "image/jpeg+lazy"]
SEEDS = [
    encode(gradient(40, 30), "JPEG"),
    encode(gradient(40, 30), "PNG"),
    encode(gradient(40, 30), "BMP"),
    encode_rgba(gradient(8, 6)),
]


def run_pipeline(data: bytes, mime: str) -> None:
    with contextlib.suppress(InvalidInputError, ResourceExhaustedError):
        to_model_input(open_image(data, mime), (16, 16))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=2048), mime=st.sampled_from(MIMES))
def test_fuzz_random_bytes(data: bytes, mime: str) -> None:
    run_pipeline(data, mime)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.sampled_from(SEEDS),
    mime=st.sampled_from(MIMES),
    cut=st.integers(min_value=0, max_value=5000),
    flips=st.lists(st.tuples(st.integers(min_value=0, max_value=5000), st.integers(0, 255)), max_size=6),
)
def test_fuzz_mutated_images(seed: bytes, mime: str, cut: int, flips: list[tuple[int, int]]) -> None:
    data = bytearray(seed[: max(1, len(seed) - cut)] if cut % 3 == 0 else seed)
    for pos, value in flips:
        if data:
            data[pos % len(data)] = value
    run_pipeline(bytes(data), mime)


# --- timing (printed, not asserted) ----------------------------------------------------------------------------


def _time_ms(fn: Callable[[], object], repeat: int = 40) -> float:
    fn()
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return 1000 * float(np.median(runs))


def test_print_decode_resize_timing(capsys: pytest.CaptureFixture[str]) -> None:
    """Median ms of decode + convert + BILINEAR resize, full decode vs JPEG draft (printed, not asserted)."""
    photo = Image.open(IMAGES / "pets.jpg").convert("RGB") if IMAGES.is_dir() else Image.fromarray(gradient(512, 430))
    lines = []
    cases = [((640, 480), (300, 300)), ((640, 480), (224, 224)), ((1280, 720), (300, 300)), ((1920, 1080), (300, 300))]
    for (w, h), size in cases:
        data = encode(photo.resize((w, h), Image.Resampling.BICUBIC), "JPEG", quality=90)

        def forced(data: bytes = data, size: tuple[int, int] = size) -> Image.Image:
            img = Image.open(io.BytesIO(data))
            img.draft("RGB", size)  # what Pillow picks without our >= 2x rule
            np.asarray(img.convert("RGB").resize(size, Image.Resampling.BILINEAR))
            return img

        def ours(data: bytes = data, size: tuple[int, int] = size) -> object:
            return to_model_input(open_image(data, "image/jpeg"), size)

        def plain(data: bytes = data, size: tuple[int, int] = size) -> object:
            return reference_resize(data, size)

        plain_ms, draft_ms, ours_ms = _time_ms(plain), _time_ms(forced), _time_ms(ours)
        lines.append(
            f"{w}x{h} JPEG -> {size[0]}x{size[1]}: full decode+resize {plain_ms:.2f} ms | draft (decodes "
            f"{forced().size[0]}x{forced().size[1]}) {draft_ms:.2f} ms | to_model_input {ours_ms:.2f} ms"
        )
    with capsys.disabled():
        print("\n" + "\n".join(lines))
