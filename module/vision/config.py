"""Config of the mlmodel vision service: Viam's attribute names and meanings, plus NMS, max_detections, an
allow-list and a resize mode."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final

from module.errors import ConfigError
from module.mlmodel.box_order import check_box_order
from module.mlmodel.labels import read_label_file
from module.resource.attributes import Attributes
from module.resource.base import Dependencies
from module.vision.layouts import OUTPUT_LAYOUT_CHOICES
from module.vision.objects3d import SegmentSettings
from module.vision.tensorize import check_normalization

RESIZE_MODES: Final = ("stretch", "letterbox", "center_crop")
OUTPUT_ROLES: Final = ("location", "category", "score", "n_detections", "probability")


@dataclass(frozen=True, slots=True)
class Thresholds:
    """The filters applied to every result; replaceable at run time (DoCommand set_thresholds) as one unit.

    ``None`` means "not set": the model family's default applies (see :mod:`module.vision.families`; 0.25 /
    NMS / 300 for YOLO exports, 0 / none / all for SSDs and classifiers).
    """

    default_minimum_confidence: float | None = None
    label_confidences: Mapping[str, float] = field(default_factory=dict)
    allowed_labels: frozenset[str] | None = None
    iou_threshold: float | None = None
    class_agnostic_nms: bool = False
    max_detections: int | None = None

    @classmethod
    def parse(cls, attrs: Attributes) -> Thresholds:
        allowed = attrs.strings("allowed_labels")
        return cls(
            default_minimum_confidence=attrs.number("default_minimum_confidence", low=0.0, high=1.0),
            label_confidences=attrs.number_map("label_confidences", low=0.0, high=1.0),
            allowed_labels=frozenset(a.lower() for a in allowed) if allowed is not None else None,
            iou_threshold=attrs.number("iou_threshold", low=0.0, high=1.0),
            class_agnostic_nms=attrs.boolean("class_agnostic_nms"),
            max_detections=attrs.integer("max_detections", low=1, high=100_000),
        )

    def as_dict(self) -> dict[str, Any]:
        return {"default_minimum_confidence": self.default_minimum_confidence,
                "label_confidences": dict(self.label_confidences),
                "allowed_labels": sorted(self.allowed_labels) if self.allowed_labels is not None else None,
                "iou_threshold": self.iou_threshold, "class_agnostic_nms": self.class_agnostic_nms,
                "max_detections": self.max_detections}

    def with_defaults(self, min_confidence: float, iou_threshold: float | None, max_detections: int | None) -> Thresholds:
        """These thresholds with every unset one replaced by the given default."""
        return replace(
            self,
            default_minimum_confidence=(min_confidence if self.default_minimum_confidence is None
                                        else self.default_minimum_confidence),
            iou_threshold=iou_threshold if self.iou_threshold is None else self.iou_threshold,
            max_detections=max_detections if self.max_detections is None else self.max_detections,
        )


@dataclass(frozen=True, slots=True)
class VisionConfig:
    """Parsed ``attributes`` of an mlmodel vision service."""

    mlmodel_name: str
    camera_name: str = ""
    label_path: str = ""
    labels: tuple[str, ...] | None = None  # read once from label_path
    remap_input_names: Mapping[str, str] = field(default_factory=dict)
    remap_output_names: Mapping[str, str] = field(default_factory=dict)
    box_order: tuple[int, ...] | None = None
    input_image_bgr: bool = False
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    resize_mode: str | None = None  # None: the model family's (letterbox for YOLO exports, else stretch)
    output_layout: str = "auto"
    max_candidates: int | None = None  # None: layouts.DEFAULT_MAX_CANDIDATES
    thresholds: Thresholds = field(default_factory=Thresholds)
    point_clouds: SegmentSettings = field(default_factory=SegmentSettings)  # GetObjectPointClouds

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> VisionConfig:
        attrs = Attributes(raw)
        label_path = attrs.string("label_path")
        config = cls(
            mlmodel_name=attrs.string("mlmodel_name", required=True),
            camera_name=attrs.string("camera_name"),
            label_path=label_path,
            labels=_read_labels(label_path) if label_path else None,
            remap_input_names=attrs.string_map("remap_input_names"),
            remap_output_names=attrs.string_map("remap_output_names"),
            box_order=_box_order(attrs.numbers("xmin_ymin_xmax_ymax_order", length=4)),
            input_image_bgr=attrs.boolean("input_image_bgr"),
            mean=_three(attrs.numbers("input_image_mean_value", min_length=3)),
            std=_three(attrs.numbers("input_image_std_dev", min_length=3)),
            resize_mode=attrs.string("resize_mode") or None,
            output_layout=attrs.choice("output_layout", OUTPUT_LAYOUT_CHOICES, default="auto"),
            max_candidates=attrs.integer("max_candidates", low=1, high=1_000_000),
            thresholds=Thresholds.parse(attrs),
            point_clouds=_point_cloud_settings(attrs),
        )
        attrs.finish()
        if config.resize_mode is not None and config.resize_mode not in RESIZE_MODES:
            raise ConfigError(f"attribute 'resize_mode' must be one of {', '.join(RESIZE_MODES)} (or unset for the model "
                              f"family's default), got {config.resize_mode!r}")
        check_normalization(config.mean, config.std)
        bad = sorted(set(config.remap_output_names.values()) - set(OUTPUT_ROLES))
        if bad:
            raise ConfigError(f"attribute 'remap_output_names' maps to unknown role(s) {bad}; roles: {', '.join(OUTPUT_ROLES)}")
        if set(config.remap_input_names.values()) - {"image"}:
            raise ConfigError("attribute 'remap_input_names' must map the model's input name to \"image\", got "
                              f"{dict(config.remap_input_names)}")
        return config

    def dependencies(self) -> Dependencies:
        return Dependencies(required=tuple(n for n in (self.mlmodel_name, self.camera_name) if n))


def _read_labels(path: str) -> tuple[str, ...]:
    return read_label_file(path, "label_path")  # its errors name the attribute


def _box_order(values: tuple[float, ...] | None) -> tuple[int, ...] | None:
    try:
        return None if values is None else check_box_order(values, "attribute 'xmin_ymin_xmax_ymax_order'")
    except ValueError as exc:
        raise ConfigError(f"{exc} (entry i says which of xmin=0, ymin=1, xmax=2, ymax=3 sits at position i of each box)") from None


def _three(values: tuple[float, ...] | None) -> tuple[float, float, float] | None:
    return None if values is None else (values[0], values[1], values[2])


def _point_cloud_settings(attrs: Attributes) -> SegmentSettings:
    """GetObjectPointClouds attributes: rdk detector_3d_segmenter's ``mean_k`` and ``sigma`` (0 turns the outlier
    filter off, as rdk's <= 0), plus the depth split and the bounds on an object's points."""
    default = SegmentSettings()
    gap_mm = attrs.number("depth_gap_mm", default=default.depth_gap_m * 1000, low=0.0, high=100_000.0)
    return SegmentSettings(
        mean_k=attrs.integer("mean_k", default=default.mean_k, low=0, high=1000) or 0,
        sigma=attrs.number("sigma", default=default.sigma, low=0.0, high=100.0) or 0.0,
        depth_gap_m=(gap_mm or 0.0) / 1000.0,
        min_points=attrs.integer("min_object_points", default=default.min_points, low=1, high=1_000_000) or 1,
        max_points=attrs.integer("max_object_points", default=default.max_points, low=100, high=1_000_000)
        or default.max_points,
    )
