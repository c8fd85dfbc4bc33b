"""In-process vision services on synthetic TFLite models (devkit/models.py), for the vision unit tests."""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import pytest

from module.mlmodel.config import TFLiteConfig
from module.mlmodel.model import TFLiteModel
from module.resource.manager import ResourceManager
from module.resource.names import MLMODEL_API
from module.resource.registry import ResourceContext
from module.vision.config import VisionConfig
from module.vision.detections import Detection
from module.vision.service import VisionService

WIDTH, HEIGHT = 200, 100  # a non-square image, so x/y mix-ups show
BOX = (0.1, 0.2, 0.6, 0.9)  # left, top, right, bottom (normalised)
BOX_PX = (20, 20, 120, 90)  # on the 200 x 100 image


def image_bytes(width: int = WIDTH, height: int = HEIGHT, fmt: str = "PNG", mode: str = "RGB") -> bytes:
    rng = np.random.default_rng(width * 7919 + height)
    pixels = rng.integers(0, 256, (height, width, len(mode)), dtype=np.uint8)
    out = io.BytesIO()
    PIL.Image.fromarray(pixels, mode).save(out, fmt)
    return out.getvalue()


class Harness:
    """Writes models to a folder, loads them as tflite_cpu resources and builds vision services on them."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.resources = ResourceManager()
        self._count = 0

    def model(self, data: bytes, name: str = "mlmodel", **mlmodel_attrs: Any) -> TFLiteModel:
        """Load ``data`` as the mlmodel ``name`` (replacing any previous one, which is closed)."""
        self._count += 1
        path = self.folder / f"model{self._count}.tflite"
        path.write_bytes(data)
        model = TFLiteModel(TFLiteConfig.parse({"model_path": str(path), "pool_size": 1, **mlmodel_attrs}), name=name)
        old = self.resources.put(MLMODEL_API, name, model)
        if old is not None:
            old.close()
        return model

    def vision(self, mlmodel: str = "mlmodel", **attrs: Any) -> VisionService:
        config = VisionConfig.parse({"mlmodel_name": mlmodel, **attrs})
        return VisionService.create(ResourceContext("vision", (), self.resources, lambda: None), config)

    def service(self, data: bytes, **attrs: Any) -> VisionService:
        self.model(data)
        return self.vision(**attrs)

    def labels(self, labels: Sequence[str], name: str = "labels.txt") -> str:
        path = self.folder / name
        path.write_text("\n".join(labels) + "\n")
        return str(path)

    def close(self) -> None:
        self.resources.close_all()


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(tmp_path)
    try:
        yield h
    finally:
        h.close()


def boxes_of(detections: Sequence[Detection]) -> list[tuple[int, int, int, int]]:
    return [(d.x_min, d.y_min, d.x_max, d.y_max) for d in detections]


def check_detection(d: Detection, width: int, height: int) -> None:
    """What every Detection must satisfy: all four pixel coordinates inside the image, normalised = px / size."""
    assert 0 <= d.x_min <= d.x_max <= width and 0 <= d.y_min <= d.y_max <= height
    assert d.x_max_normalized > 0 and d.y_max_normalized > 0  # viam-server divides by them
    assert d.x_min_normalized == d.x_min / width and d.x_max_normalized == d.x_max / width
    assert d.y_min_normalized == d.y_min / height and d.y_max_normalized == d.y_max / height
    assert 0.0 <= d.confidence <= 1.0
