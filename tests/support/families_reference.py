"""Comparison of service answers with ``reference_results_v2.json`` within the tolerances of the testdata README 8.5.

* Float models (YOLOv5n fp16, the Teachable Machine classifier) give the same numbers on both runtimes and kernel
  sets: every detection above the threshold must have a partner (same label, score within 0.002, box corners within
  1.5 px) and the other way round.
* Everything quantised moves between runtimes by up to 0.2 on a score (0.3 for the odd-scale file) and weak
  detections come and go: each detection scoring >= 0.5 on either side must have a partner of the same label on the
  other side with IoU >= 0.75 and a score within the tolerance.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FLOAT_MODELS = ("yolov5n_fp16_640_coco80.tflite", "teachable_machine_float_224_cats_dogs.tflite")
SCORE_TOLERANCE = {"yolov8n_full_integer_quant_640_coco80_oddscale.tflite": 0.3}
QUANTISED_SCORE_TOLERANCE = 0.2
STRONG = 0.5
MIN_IOU = 0.75


@dataclass(frozen=True)
class Box:
    label: str
    score: float
    xyxy: tuple[float, float, float, float]


def load(testdata: Path) -> dict[str, Any]:
    return json.loads((testdata / "reference_results_v2.json").read_text())["models"]


def reference_boxes(entry: dict[str, Any]) -> list[Box]:
    return [Box(d["label"], d["score"], tuple(d["box_xyxy"])) for d in entry["detections"]]  # type: ignore[arg-type]


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _partner(box: Box, others: Sequence[Box], *, score_tol: float, exact: bool) -> bool:
    for other in others:
        if other.label != box.label or abs(other.score - box.score) > score_tol:
            continue
        if exact and max(abs(p - q) for p, q in zip(box.xyxy, other.xyxy)) <= 1.5:
            return True
        if not exact and iou(box.xyxy, other.xyxy) >= MIN_IOU:
            return True
    return False


def detection_problems(model: str, ours: Sequence[Box], reference: Sequence[Box]) -> list[str]:
    """What does not match (empty when within tolerance)."""
    exact = model in FLOAT_MODELS
    tol = 0.002 if exact else SCORE_TOLERANCE.get(model, QUANTISED_SCORE_TOLERANCE)
    floor = 0.0 if exact else STRONG
    problems = []
    for box in reference:
        if box.score >= floor and not _partner(box, ours, score_tol=tol, exact=exact):
            problems.append(f"reference {box} has no partner in ours")
    for box in ours:
        if box.score >= floor and not _partner(box, reference, score_tol=tol, exact=exact):
            problems.append(f"ours {box} has no partner in the reference")
    return problems
