"""How a vision service uses a particular mlmodel: which input gets the image, which layout its outputs have and
what each output means, and the model family's pre- and post-processing defaults.

Derived once per model (and again when the model is replaced) from its metadata and the service config; the
layout is chosen by :func:`module.vision.layouts.choose_layout` (attribute ``output_layout``, then what the file
says: Ultralytics metadata and TFLite metadata names, then the graph's post-process op, then shapes).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from module.errors import FailedPreconditionError
from module.mlmodel.labels import read_label_file
from module.mlmodel.types import ModelInfo, TensorInfo
from module.vision.boxes import DEFAULT_BOX_ORDER
from module.vision.config import VisionConfig
from module.vision.families import FamilyDefaults, defaults_for
from module.vision.layouts import DEFAULT_MAX_CANDIDATES, Layout, ModelHints, OutputTensor, Quantization, choose_layout
from module.vision.tensorize import SUPPORTED_DTYPES, InputSpec, normalization_from_quantization


@dataclass(frozen=True, slots=True)
class DetectorPlan:
    location: str
    score: str
    category: str | None  # None: `score` is [1, N, classes] and the class is its argmax
    count: str | None
    box_order: tuple[int, ...]
    normalized: bool | None  # None: decide per call with the heuristic
    score_quant: Quantization
    location_quant: Quantization


@dataclass(frozen=True, slots=True)
class ClassifierPlan:
    probability: str
    quant: Quantization


@dataclass(frozen=True, slots=True)
class YoloPlan:
    """A YOLO-family or end-to-end detector: one output, decoded by :func:`module.vision.layouts.decode`."""

    output: str
    quant: Quantization


@dataclass(frozen=True, slots=True)
class Plan:
    input_name: str
    input: InputSpec
    layout: Layout
    family: FamilyDefaults
    detector: DetectorPlan | None  # ssd layout
    yolo: YoloPlan | None  # yolov8, yolov5, end2end layouts
    classifier: ClassifierPlan | None
    labels: tuple[str, ...]
    resize_mode: str  # stretch, letterbox or center_crop: the attribute, else the family's
    fill: int  # letterbox padding grey level
    max_candidates: int

    @property
    def detects(self) -> bool:
        return self.detector is not None or self.yolo is not None


def make_plan(info: ModelInfo, config: VisionConfig) -> Plan:
    """The plan for ``info``.

    Raises:
        FailedPreconditionError: The model's input or outputs cannot be used (the message lists names and shapes).
        ConfigError: A ``remap_output_names`` entry names no output, or a role the model's layout has not.
    """
    image = _image_input(info, config)
    channels_first = _channels_first(image)
    height, width = (image.shape[2], image.shape[3]) if channels_first else (image.shape[1], image.shape[2])
    try:
        layout = choose_layout(_output_tensors(info), _hints(info, (height, width)), forced=config.output_layout,
                               remap=config.remap_output_names)
    except FailedPreconditionError as exc:
        raise FailedPreconditionError(f"mlmodel {config.mlmodel_name!r}: {exc}") from None
    family = defaults_for(layout)
    by_name = {t.name: t for t in info.outputs}
    detector = _detector(layout, by_name, config) if layout.kind == "ssd" else None
    yolo = None
    if layout.kind in ("yolov8", "yolov5", "end2end"):
        output = by_name[layout.roles["predictions"]]
        yolo = YoloPlan(output=output.name, quant=_quant(output))
    classifier = None
    if layout.kind == "classifier":
        tensor = by_name[layout.roles["probability"]]
        classifier = ClassifierPlan(probability=tensor.name, quant=_quant(tensor))
    return Plan(input_name=image.name, input=_input_spec(image, config, family), layout=layout, family=family,
                detector=detector, yolo=yolo, classifier=classifier, labels=_labels(info, config),
                resize_mode=config.resize_mode or family.resize_mode, fill=family.fill,
                max_candidates=config.max_candidates or DEFAULT_MAX_CANDIDATES)


def _output_tensors(info: ModelInfo) -> list[OutputTensor]:
    return [OutputTensor(t.name, tuple(t.shape), t.dtype, str(t.extra.get("postprocess_role") or ""))
            for t in info.outputs]


def _hints(info: ModelInfo, input_hw: tuple[int, int]) -> ModelHints:
    """What the file says about itself, as the mlmodel reports it in its outputs' ``extra``."""
    extra: Mapping[str, Any] = next((t.extra for t in info.outputs if "ultralytics_task" in t.extra), {})
    kpt = extra.get("ultralytics_kpt_shape")
    classes = extra.get("ultralytics_classes")
    return ModelHints(
        task=str(extra["ultralytics_task"]) if "ultralytics_task" in extra else None,
        end2end=bool(extra["ultralytics_end2end"]) if "ultralytics_end2end" in extra else None,
        kpt_shape=(int(kpt[0]), int(kpt[1])) if isinstance(kpt, (list, tuple)) and len(kpt) == 2 else None,
        class_count=int(classes) if isinstance(classes, (int, float)) and classes > 0 else None,
        ultralytics=bool(extra),
        input_hw=input_hw if input_hw[0] > 0 and input_hw[1] > 0 else None,
    )


def _channels_first(tensor: TensorInfo) -> bool:
    return tensor.shape[1] == 3 and tensor.shape[3] != 3


def _image_input(info: ModelInfo, config: VisionConfig) -> TensorInfo:
    named = [t for t in info.inputs if config.remap_input_names.get(t.name, t.name) == "image"]
    candidates = named or (list(info.inputs) if len(info.inputs) == 1 else [])
    if len(candidates) != 1:
        raise FailedPreconditionError(
            f"mlmodel {config.mlmodel_name!r} has inputs {_describe(info.inputs)}; the vision service needs exactly one "
            "image input (name it with the attribute 'remap_input_names': {\"<input name>\": \"image\"})")
    tensor = candidates[0]
    if len(tensor.shape) != 4 or tensor.dtype not in SUPPORTED_DTYPES or 3 not in tensor.shape[1:]:
        raise FailedPreconditionError(
            f"mlmodel {config.mlmodel_name!r} input {tensor.name!r} is {tensor.dtype} {list(tensor.shape)}; an image input "
            f"must be [1, H, W, 3] or [1, 3, H, W] of {', '.join(SUPPORTED_DTYPES)}")
    return tensor


def _input_spec(tensor: TensorInfo, config: VisionConfig, family: FamilyDefaults) -> InputSpec:
    channels_first = _channels_first(tensor)
    height, width = (tensor.shape[2], tensor.shape[3]) if channels_first else (tensor.shape[1], tensor.shape[2])
    quant = _quant(tensor)
    # Each of mean and std: the config's, else the family's (YOLO: RGB / 255), else the model metadata's, else what
    # a quantised input's own range implies, else the default (in tensorize).
    implied = normalization_from_quantization(tensor.dtype, quant.scale, quant.zero_point) if tensor.dtype == "int8" else None
    mean = (config.mean or family.mean or _from_metadata(tensor, "normalization_mean")
            or (implied[0] if implied else None))
    std = (config.std or family.std or _from_metadata(tensor, "normalization_std")
           or (implied[1] if implied else None))
    return InputSpec(height=height if height > 0 else None, width=width if width > 0 else None,
                     channels_first=channels_first, dtype=np.dtype(tensor.dtype), scale=quant.scale,
                     zero_point=quant.zero_point, mean=mean, std=std, bgr=config.input_image_bgr)


def _from_metadata(tensor: TensorInfo, key: str) -> tuple[float, float, float] | None:
    """TFLite metadata normalises 0..255 pixels; Viam's attributes work on the 0..1 scale. uint8 inputs take raw pixels."""
    values = tensor.extra.get(key)
    if tensor.dtype == "uint8" or not values:
        return None
    return _rgb([v / 255.0 for v in values])


def _rgb(values: list[float]) -> tuple[float, float, float]:
    return (values[0], values[0], values[0]) if len(values) == 1 else (values[0], values[1], values[2])


def _detector(layout: Layout, by_name: Mapping[str, TensorInfo], config: VisionConfig) -> DetectorPlan:
    roles = layout.roles
    location = by_name[roles["location"]]
    score = by_name[roles["score"]]
    meta_order = location.extra.get("boxOrder")
    order = config.box_order or (tuple(int(v) for v in meta_order) if meta_order else DEFAULT_BOX_ORDER)
    units = location.extra.get("box_coordinate_type")
    return DetectorPlan(location=location.name, score=score.name, category=roles.get("category"),
                        count=roles.get("n_detections"), box_order=tuple(order),
                        normalized={"ratio": True, "pixel": False}.get(str(units)), score_quant=_quant(score),
                        location_quant=_quant(location))


def _quant(tensor: TensorInfo) -> Quantization:
    if tensor.dtype in ("float32", "float16", "float64"):
        return Quantization()
    return Quantization(float(tensor.extra.get("scale", 0.0)), int(tensor.extra.get("zero_point", 0)))


def _labels(info: ModelInfo, config: VisionConfig) -> tuple[str, ...]:
    """label_path of the service, else the labels file the mlmodel names (Viam's extra["labels"]), else none."""
    if config.labels is not None:
        return config.labels
    for tensor in info.outputs:
        path = tensor.extra.get("labels")
        if isinstance(path, str) and path:
            return read_label_file(path, origin=f"the labels of mlmodel {config.mlmodel_name!r}")
    return ()


def _describe(tensors: tuple[TensorInfo, ...]) -> str:
    return ", ".join(f"{t.name!r} {t.dtype} {list(t.shape)}" for t in tensors) or "none"


def read_output(outputs: Mapping[str, NDArray[Any]], name: str) -> NDArray[Any]:
    """The output the plan names, or FAILED_PRECONDITION when the mlmodel did not return it."""
    try:
        return outputs[name]
    except KeyError:
        raise FailedPreconditionError(f"the mlmodel did not return output {name!r} (it returned "
                                      f"{', '.join(map(repr, outputs)) or 'nothing'})") from None
