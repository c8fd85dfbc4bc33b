"""Run every real test model through TFLiteModel with one runtime and print the results as JSON.

Used by tests/e2e/test_tflite_runtime_compat.py: run with ``python -m tests.support.tflite_runtime_script TESTDATA RUNTIME`` in
the NumPy 1.x venv that tflite-runtime 2.14 needs, and imported in process for ai-edge-litert, so both runtimes
go through exactly the same code. Preprocessing is the reference run's (../shared/testdata/README.md section 2).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from module.errors import ModuleError
from module.mlmodel.config import TFLiteConfig
from module.mlmodel.model import TFLiteModel

CLASSIFIERS = ("mobilenet_v2_1.0_224_quant.tflite", "mobilenet_v1_0.25_224_quant.tflite",
               "mobilenet_v1_0.25_224_1_default_1.tflite", "mobilenet_v1_0.25_224_1_metadata_1.tflite",
               "vww_96_int8.tflite")
DETECTORS = ("coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite",
             "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29_no_metadata.tflite")
RAW = ("face_detection_short_range.tflite",)
INVALID = ("invalid/person_detect.tflite", "invalid/model_invoking_error.tflite")
IMAGES = ("grace_hopper.bmp", "cat.bmp", "parrot.jpg", "pets.jpg", "face.jpg", "cats_and_dogs.jpg", "sparrow.png",
          "burger.jpg")


def preprocess(path: Path, width: int, height: int, dtype: str) -> np.ndarray:
    pixels = np.asarray(Image.open(path).convert("RGB").resize((width, height), Image.BILINEAR))[None]
    if dtype == "float32":
        return ((pixels.astype(np.float32) - 127.5) / 127.5).astype(np.float32)
    if dtype == "int8":
        return (pixels.astype(np.int16) - 128).astype(np.int8)
    return pixels


def _dequantize(values: np.ndarray, extra: Any) -> np.ndarray:
    if "scale" not in extra:
        return values.astype(np.float64)
    return (values.astype(np.float64) - extra["zero_point"]) * extra["scale"]


def _run_model(testdata: Path, name: str, runtime: str) -> dict[str, Any]:
    model = TFLiteModel(TFLiteConfig(model_path=str(testdata / "models" / name), pool_size=1, runtime=runtime))
    try:
        info = model.metadata()
        spec = info.inputs[0]
        _, height, width, _ = spec.shape
        images: dict[str, Any] = {}
        for image in IMAGES:
            outputs = list(model.infer({spec.name: preprocess(testdata / "images" / image, width, height,
                                                              spec.dtype)}).values())
            if name in CLASSIFIERS:
                scores = _dequantize(outputs[0][0], info.outputs[0].extra)
                images[image] = {"raw": outputs[0][0].tolist(), "scores": [round(float(s), 6) for s in scores]}
            elif name in DETECTORS:
                boxes, classes, scores, count = outputs
                n = int(count[0])
                images[image] = {"detections": [[int(c), float(s), [float(v) for v in b]]
                                                for b, c, s in zip(boxes[0][:n], classes[0][:n], scores[0][:n])]}
            else:
                logits = np.clip(outputs[1].reshape(-1).astype(np.float64), -100, 100)
                images[image] = {"anchor_scores": [round(float(v), 6) for v in 1 / (1 + np.exp(-logits))]}
        status = model.status()
        return {"runtime": status["runtime"], "runtime_version": status["runtime_version"], "type": info.type,
                "inputs": [[t.name, t.dtype, list(t.shape)] for t in info.inputs],
                "outputs": [[t.name, t.dtype, list(t.shape)] for t in info.outputs],
                "box_order": info.outputs[0].extra.get("boxOrder"),
                "labels_file_bytes": _labels_size(info), "images": images}
    finally:
        model.close()


def _labels_size(info: Any) -> int | None:
    paths = {t.extra["labels"] for t in info.outputs if "labels" in t.extra}
    return Path(paths.pop()).stat().st_size if paths else None


def results(testdata: Path, runtime: str) -> dict[str, Any]:
    """Every model's results (or load error) with ``runtime``, keyed by model file name."""
    out: dict[str, Any] = {}
    for name in CLASSIFIERS + DETECTORS + RAW:
        out[name] = _run_model(testdata, name, runtime)
    for name in INVALID:
        try:
            TFLiteModel(TFLiteConfig(model_path=str(testdata / "models" / name), pool_size=1, runtime=runtime))
            out[name] = {"error": None}
        except ModuleError as exc:
            out[name] = {"error": type(exc).__name__, "message": str(exc)}
    return out


def main() -> None:
    testdata, runtime = Path(sys.argv[1]), sys.argv[2]
    json.dump({"numpy": np.__version__, "models": results(testdata, runtime)}, sys.stdout)


if __name__ == "__main__":
    main()
