"""The world of the end-to-end fault tests: a module process, Ready next to the stand-in parent whose camera "cam"
serves a small PNG, with a synthetic detector mlmodel "det" (one box, class 1, 0.75) and a vision service "vis" on
it. Shared by tests/e2e/test_reliability_faults.py and test_reliability_field.py."""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image

from devkit.models import detector_model
from devkit.standin.launcher import MLMODEL, VISION, ModuleProcess, short_tempdir
from devkit.standin.parent import CameraFrame, FakeParent, frame

IMAGE_SIZE = (40, 30)
BOXES = [(0.25, 0.25, 0.75, 0.5)]
DETECTOR = {"boxes": BOXES, "classes": [1], "scores": [0.75]}
OTHER_DETECTOR = {"boxes": [(0.0, 0.5, 0.5, 1.0)], "classes": [0], "scores": [0.5]}


def detector_file(path: Path, spec: dict[str, Any] = DETECTOR) -> str:
    """A constant-output detector model (``spec``) written to ``path``."""
    path.write_bytes(detector_model(spec["boxes"], spec["classes"], spec["scores"]))
    return str(path)


def image(size: tuple[int, int] = IMAGE_SIZE, seed: int = 3) -> PIL.Image.Image:
    """Random RGB pixels (what the camera shows does not matter: the detector's outputs are constant)."""
    return PIL.Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def png(size: tuple[int, int] = IMAGE_SIZE) -> bytes:
    out = io.BytesIO()
    image(size).save(out, "PNG")
    return out.getvalue()


def start(directory: str, *, log_level: str = "info", env: dict[str, str] | None = None) -> tuple[FakeParent, ModuleProcess]:
    """A fake parent and a module process in ``directory``, the module Ready with that parent."""
    parent = FakeParent(os.path.join(directory, "parent.sock"))
    module = ModuleProcess(socket_dir=directory, log_level=log_level, env=env)
    module.wait_for_socket()
    module.ready(parent.address)
    return parent, module


@dataclass
class World:
    dir: str
    parent: FakeParent
    module: ModuleProcess
    good_frame: CameraFrame

    def reset(self) -> None:
        """No faults, the good frame on "cam", and the module still alive (checked before and after each test)."""
        self.parent.clear_faults()
        self.parent.cameras["cam"] = self.good_frame
        assert self.module.proc.poll() is None, f"the module died:\n{self.module.log()[-3000:]}"


@contextmanager
def detector_world(log_level: str = "info") -> Iterator[World]:
    directory = short_tempdir()
    parent, module = start(directory, log_level=log_level)
    good = frame(image(), "image/png")
    parent.cameras["cam"] = good
    try:
        module.add("det", MLMODEL, {"model_path": detector_file(Path(directory) / "det.tflite"), "pool_size": 2})
        module.add("vis", VISION, {"mlmodel_name": "det", "camera_name": "cam"},
                   ("rdk:service:mlmodel/det", "rdk:component:camera/cam"))
        yield World(directory, parent, module, good)
    finally:
        module.close()
        parent.close()
        shutil.rmtree(directory, ignore_errors=True)
