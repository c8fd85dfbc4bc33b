"""Tests for module.vision.tensorize.image_to_tensor and InputSpec."""

from __future__ import annotations

import numpy as np
import pytest

from module.errors import ConfigError, InvalidInputError
from module.vision.tensorize import InputSpec, image_to_tensor

RNG = np.random.default_rng(1234)


def image(height: int = 6, width: int = 5) -> np.ndarray:
    return RNG.integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def all_values() -> np.ndarray:
    """Every uint8 value in every channel: a 256x1x3 image."""
    v = np.arange(256, dtype=np.uint8)
    return np.stack([v, v[::-1], v], -1)[:, None, :]


def spec(dtype: object, **kw: object) -> InputSpec:
    base: dict[str, object] = {"height": None, "width": None, "channels_first": False, "dtype": dtype}
    base.update(kw)
    return InputSpec(**base)  # type: ignore[arg-type]


def test_uint8_raw_pixels_mean_std_ignored() -> None:
    rgb = image()
    given = spec(np.uint8, mean=(0.1, 0.2, 0.3), std=(0.2, 0.2, 0.2), scale=0.0078125, zero_point=128)
    out = image_to_tensor(rgb, given)
    assert out.shape == (1, 6, 5, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
    np.testing.assert_array_equal(out[0], rgb)
    assert np.shares_memory(out, rgb)  # no copy for the common uint8 NHWC case


def test_float32_default_is_minus_one_to_one() -> None:
    rgb = all_values()
    out = image_to_tensor(rgb, spec("float32"))
    assert out.dtype == np.float32 and out.shape == (1, 256, 1, 3)
    np.testing.assert_allclose(out[0], (rgb.astype(np.float64) - 127.5) / 127.5, atol=1e-6)
    assert out.min() == pytest.approx(-1.0) and out.max() == pytest.approx(1.0)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_float_custom_mean_std(dtype: type) -> None:
    rgb = image()
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    out = image_to_tensor(rgb, spec(dtype, mean=mean, std=std))
    assert out.dtype == dtype
    expected = (rgb / 255.0 - np.array(mean)) / np.array(std)
    rtol = 2e-3 if dtype == np.float16 else 1e-5
    np.testing.assert_allclose(out[0].astype(np.float64), expected, rtol=rtol, atol=1e-5)


def test_int8_vww_formula() -> None:
    """testdata/README.md: q = round((pixel / 255) / 0.003921569 + (-128)), i.e. pixel - 128."""
    rgb = all_values()
    out = image_to_tensor(rgb, spec(np.int8, height=256, width=1, scale=0.003921569, zero_point=-128))
    assert out.dtype == np.int8
    expected = np.round((rgb.astype(np.float64) / 255) / 0.003921569 + (-128)).astype(np.int8)
    np.testing.assert_array_equal(out[0], expected)
    np.testing.assert_array_equal(out[0].astype(np.int16), rgb.astype(np.int16) - 128)


def test_int8_without_quantisation_params_is_pixel_minus_128() -> None:
    rgb = all_values()
    out = image_to_tensor(rgb, spec(np.int8))
    np.testing.assert_array_equal(out[0].astype(np.int16), rgb.astype(np.int16) - 128)


@pytest.mark.parametrize(
    ("mean", "std", "scale", "zero_point"),
    [
        ((0.5,) * 3, (0.5,) * 3, 1 / 128, 0),
        ((0.0,) * 3, (1.0,) * 3, 1 / 255, -128),
        ((0.4, 0.5, 0.6), (0.2,) * 3, 0.05, 3),
    ],
)
def test_int8_with_mean_std_quantises(
    mean: tuple[float, float, float], std: tuple[float, float, float], scale: float, zero_point: int
) -> None:
    rgb = all_values()
    out = image_to_tensor(rgb, spec(np.int8, mean=mean, std=std, scale=scale, zero_point=zero_point))
    real = (rgb / 255.0 - np.array(mean)) / np.array(std)
    expected = np.clip(np.round(real / scale + zero_point), -128, 127)
    diff = np.abs(out[0].astype(np.float64) - expected)
    assert diff.max() <= 1  # float32 vs float64 can differ only on exact .5 ties
    assert (diff == 0).mean() > 0.99
    assert out.min() >= -128 and out.max() <= 127


def test_int8_mean_std_without_scale() -> None:
    with pytest.raises(InvalidInputError, match="quantisation scale"):
        image_to_tensor(image(), spec(np.int8, mean=(0.5, 0.5, 0.5)))


def test_nchw() -> None:
    rgb = image(4, 7)
    for dtype in (np.uint8, np.float32, np.int8):
        nhwc = image_to_tensor(rgb, spec(dtype))
        nchw = image_to_tensor(rgb, spec(dtype, channels_first=True))
        assert nchw.shape == (1, 3, 4, 7) and nchw.flags.c_contiguous and nchw.dtype == dtype
        np.testing.assert_array_equal(nchw[0], nhwc[0].transpose(2, 0, 1))


def test_bgr() -> None:
    rgb = image()
    out = image_to_tensor(rgb, spec(np.uint8, bgr=True))
    np.testing.assert_array_equal(out[0], rgb[..., ::-1])
    # mean/std apply in the model's channel order: channel 0 of a BGR model is blue.
    mean, std = (0.1, 0.5, 0.9), (0.25, 0.5, 1.0)
    out = image_to_tensor(rgb, spec(np.float32, bgr=True, mean=mean, std=std, channels_first=True))
    expected = (rgb[..., ::-1] / 255.0 - np.array(mean)) / np.array(std)
    np.testing.assert_allclose(out[0], expected.transpose(2, 0, 1), atol=1e-5)


@pytest.mark.parametrize("dtype", [np.int16, np.uint16, np.int32, np.int64, np.bool_, np.complex64])
def test_unsupported_dtypes(dtype: type) -> None:
    with pytest.raises(InvalidInputError) as err:
        image_to_tensor(image(), spec(dtype))
    assert np.dtype(dtype).name in str(err.value)
    for name in ("uint8", "int8", "float32"):
        assert name in str(err.value)


def test_fixed_size_must_match() -> None:
    ok = spec(np.uint8, height=6, width=5)
    assert image_to_tensor(image(6, 5), ok).shape == (1, 6, 5, 3)
    with pytest.raises(ValueError, match="5x6"):
        image_to_tensor(image(5, 6), ok)
    assert spec(np.uint8).size is None and ok.size == (5, 6)


def test_bad_image_array() -> None:
    with pytest.raises(ValueError):
        image_to_tensor(np.zeros((4, 4, 4), dtype=np.uint8), spec(np.uint8))
    with pytest.raises(ValueError):
        image_to_tensor(np.zeros((4, 4, 3), dtype=np.float32), spec(np.uint8))  # type: ignore[arg-type]


def test_spec_validation() -> None:
    with pytest.raises(ConfigError, match="input_image_std_dev"):
        spec(np.float32, std=(0.5, 0.0, 0.5))
    with pytest.raises(ConfigError, match="input_image_mean_value"):
        spec(np.float32, mean=(0.5, 0.5))
    with pytest.raises(ConfigError):
        spec(np.float32, mean=(0.5, float("nan"), 0.5))
    assert spec("float32").dtype == np.dtype(np.float32)


def test_does_not_modify_input() -> None:
    rgb = image()
    before = rgb.copy()
    for dtype in (np.uint8, np.int8, np.float32):
        image_to_tensor(rgb, spec(dtype, bgr=True))
    np.testing.assert_array_equal(rgb, before)


def test_int8_without_mean_std_uses_the_range_its_quantisation_covers() -> None:
    pixels = np.array([[[0, 127, 255]]], np.uint8)
    minus_one_to_one = InputSpec(height=1, width=1, channels_first=False, dtype=np.int8, scale=1 / 127.5, zero_point=0)
    # v / 127.5 - 1, quantised with scale 1/127.5 and zero point 0: v - 127.5, rounded half to even.
    assert image_to_tensor(pixels, minus_one_to_one).reshape(-1).tolist() == [-128, 0, 127]
    odd = InputSpec(height=1, width=1, channels_first=False, dtype=np.int8, scale=0.018658448, zero_point=-14)
    # An odd range says nothing: the default [-1, 1], quantised with the input's own scale, never v - 128.
    expected = np.clip(np.rint((pixels / 127.5 - 1) / 0.018658448 - 14), -128, 127).reshape(-1).tolist()
    assert image_to_tensor(pixels, odd).reshape(-1).tolist() == expected == [-68, -14, 40]
