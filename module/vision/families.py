"""Each output layout's own pre- and post-processing defaults, and how the service's attributes override them.

A YOLO file works as exported only with the preprocessing it was trained with (RGB / 255, centred letterbox padded
with grey 114) and the post-processing its authors ship (confidence 0.25, per-class NMS at IoU 0.7 for v8/v11 or
0.45 for v5, at most 300 boxes). SSD / EfficientDet exports (boxes already decoded and suppressed by the
post-process op) and classifiers keep Viam's behaviour: stretch resize, mean/std 0.5 (or the model metadata's),
no extra NMS, every detection. Every default is overridden by the attribute of the same meaning when it is set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from module.vision.layouts import Layout

YOLO_FILL: Final = 114
UNIT_MEAN: Final = (0.0, 0.0, 0.0)
UNIT_STD: Final = (1.0, 1.0, 1.0)


@dataclass(frozen=True, slots=True)
class FamilyDefaults:
    """Defaults of one layout family.

    Attributes:
        family: Name shown by ``get_config`` (``yolov8``, ``yolov5``, ``end2end``, ``ssd``, ``classifier``).
        min_confidence: Default ``default_minimum_confidence``.
        iou_threshold: Default ``iou_threshold`` (None: no NMS, the model already did it).
        max_detections: Default ``max_detections`` (None: all).
        resize_mode: Default ``resize_mode``.
        fill: Grey level of the letterbox padding.
        mean: Input mean on the 0..1 scale, or None for the model metadata's / Viam's default.
        std: Input standard deviation on the 0..1 scale, or None as for ``mean``.
    """

    family: str
    min_confidence: float = 0.0
    iou_threshold: float | None = None
    max_detections: int | None = None
    resize_mode: str = "stretch"
    fill: int = 0
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None


_YOLO = {"min_confidence": 0.25, "max_detections": 300, "resize_mode": "letterbox", "fill": YOLO_FILL,
         "mean": UNIT_MEAN, "std": UNIT_STD}
_DEFAULTS: Final = {
    "yolov8": FamilyDefaults("yolov8", iou_threshold=0.7, **_YOLO),  # type: ignore[arg-type]
    "yolov5": FamilyDefaults("yolov5", iou_threshold=0.45, **_YOLO),  # type: ignore[arg-type]
    "end2end": FamilyDefaults("end2end", iou_threshold=None, **_YOLO),  # type: ignore[arg-type]
    "ssd": FamilyDefaults("ssd"),
    "classifier": FamilyDefaults("classifier"),
}


_ULTRALYTICS_CLASSIFIER: Final = FamilyDefaults("classifier", resize_mode="center_crop", mean=UNIT_MEAN, std=UNIT_STD)


def defaults_for(layout: Layout) -> FamilyDefaults:
    """The defaults of ``layout``'s family (an Ultralytics classifier: centre crop and RGB / 255, as it trains)."""
    if layout.kind == "classifier" and layout.ultralytics:
        return _ULTRALYTICS_CLASSIFIER
    return _DEFAULTS[layout.kind]
