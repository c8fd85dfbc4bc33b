"""module/mlmodel/model_check.py: a model file cut short or with indices out of range is refused before a runtime
sees it (tflite-runtime 2.14 reads past the end of a truncated model and takes the whole process down)."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from devkit.models import classifier_model, detector_model, dynamic_model, passthrough_model
from devkit.testdata import require_testdata
from module.mlmodel.model_check import check_model_structure

MOBILENET = "models/mobilenet_v1_0.25_224_quant.tflite"


def _factory_models() -> list[bytes]:
    return [passthrough_model("float32", (1, 4)), dynamic_model(), classifier_model([0.1, 0.9]),
            detector_model([(0.1, 0.1, 0.5, 0.5)], [1], [0.9], metadata=True, embedded_labels=["a", "b"])]


def test_every_real_and_synthetic_model_passes() -> None:
    testdata = require_testdata("models")
    for path in sorted((testdata / "models").rglob("*.tflite")):
        check_model_structure(path.read_bytes())
    for data in _factory_models():
        check_model_structure(data)


@pytest.mark.parametrize("keep", [8, 16, 100, 1000, 100_000, 400_000])
def test_a_model_cut_short_is_refused(keep: int) -> None:
    """The cuts that crashed tflite-runtime 2.14 (segmentation fault at 1000 and 100000 bytes)."""
    data = (require_testdata(MOBILENET) / MOBILENET).read_bytes()[:keep]
    with pytest.raises(ValueError, match="TFL3|corrupt|truncated|outside|past the end"):
        check_model_structure(data)


def test_every_cut_of_a_small_model_is_refused_or_still_whole() -> None:
    """Cutting a model anywhere either loses only bytes nothing points at, or is refused: never accepted broken."""
    data = detector_model([(0.1, 0.1, 0.5, 0.5)], [1], [0.9])
    accepted = []
    for keep in range(len(data)):
        try:
            check_model_structure(data[:keep])
        except ValueError:
            continue
        accepted.append(keep)
    assert all(keep >= len(data) - 64 for keep in accepted), accepted  # at most trailing padding


def test_not_a_model() -> None:
    for data in (b"", b"PK\x03\x04" + bytes(100), bytes(64)):
        with pytest.raises(ValueError, match="TFL3"):
            check_model_structure(data)


def test_random_bytes_after_the_header_never_escape_as_another_error() -> None:
    rng = np.random.default_rng(7)
    for _ in range(200):
        data = b"\x10\x00\x00\x00TFL3" + rng.integers(0, 256, int(rng.integers(0, 4000)), np.uint8).tobytes()
        try:
            check_model_structure(data)
        except ValueError:
            pass


def test_mutated_models_never_escape_as_another_error() -> None:
    base = bytearray(detector_model([(0.1, 0.1, 0.5, 0.5)], [1], [0.9]))
    rng = np.random.default_rng(11)
    for _ in range(300):
        data = bytearray(base)
        for pos in rng.integers(8, len(data) - 4, 4):
            struct.pack_into("<I", data, int(pos), int(rng.integers(0, 2**32)))
        try:
            check_model_structure(bytes(data))
        except ValueError:
            pass
