"""The plain in-process pipeline issue 13 measures the module against: Pillow decode, ``convert("RGB")``,
``resize(BILINEAR)`` to the input size, set_tensor, invoke, read every output. No module code.

Importable from the bench package and from bench/pipeline_floor_server.py (run as a script)."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import numpy as np
import PIL.Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bare import interpreter_class  # noqa: E402  (script and package use)


class Reference:
    """The plain pipeline on one interpreter of ``threads`` threads (never shared between threads)."""

    def __init__(self, model: Path, threads: int) -> None:
        self.interpreter = interpreter_class("ai-edge-litert")(model_path=str(model), num_threads=threads)
        self.interpreter.allocate_tensors()
        detail = self.interpreter.get_input_details()[0]
        self.index = detail["index"]
        self.dtype = np.dtype(detail["dtype"])
        self.size = (int(detail["shape"][2]), int(detail["shape"][1]))
        self.outputs = [d["index"] for d in self.interpreter.get_output_details()]

    def tensor(self, jpeg: bytes) -> np.ndarray:
        rgb = PIL.Image.open(io.BytesIO(jpeg)).convert("RGB").resize(self.size, PIL.Image.Resampling.BILINEAR)
        pixels = np.asarray(rgb)[np.newaxis]
        if self.dtype == np.uint8:
            return pixels
        if self.dtype == np.int8:
            return (pixels.astype(np.int16) - 128).astype(np.int8)
        return (pixels.astype(np.float32) / 255.0).astype(self.dtype)

    def __call__(self, jpeg: bytes) -> list[np.ndarray]:
        self.interpreter.set_tensor(self.index, self.tensor(jpeg))
        self.interpreter.invoke()
        return [self.interpreter.get_tensor(i) for i in self.outputs]
