"""How a vision service uses a particular mlmodel: which input gets the image and which outputs mean what.

Derived once per model (and again when the model is replaced) from its metadata and the service config:
names first (``location``/``category``/``score``/``n_detections``/``probability``, after ``remap_output_names``),
then the tensor shapes when names are missing (TFLite_Detection_PostProcess order: boxes, classes, scores, count).
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
from module.vision.tensorize import SUPPORTED_DTYPES, InputSpec

# Names models use for each role (TFLite metadata of the COCO SSD says "locations", "classes", "scores").
_ROLE_NAMES = {
    "location": ("location", "locations", "boxes", "detection_boxes"),
    "category": ("category", "categories", "classes", "detection_classes"),
    "score": ("score", "scores", "detection_scores"),
    "n_detections": ("n_detections", "number of detections", "num_detections", "count"),
}


@dataclass(frozen=True, slots=True)
class Quant:
    scale: float = 0.0
    zero_point: int = 0


@dataclass(frozen=True, slots=True)
class DetectorPlan:
    location: str
    score: str
    category: str | None  # None: `score` is [1, N, classes] and the class is its argmax
    count: str | None
    box_order: tuple[int, ...]
    normalized: bool | None  # None: decide per call with the heuristic
    score_quant: Quant
    location_quant: Quant


@dataclass(frozen=True, slots=True)
class ClassifierPlan:
    probability: str
    quant: Quant


@dataclass(frozen=True, slots=True)
class Plan:
    input_name: str
    input: InputSpec
    detector: DetectorPlan | None
    classifier: ClassifierPlan | None
    labels: tuple[str, ...]


def make_plan(info: ModelInfo, config: VisionConfig) -> Plan:
    """The plan for ``info``, or FailedPreconditionError explaining (with names and shapes) why it cannot be used."""
    image = _image_input(info, config)
    outputs = {config.remap_output_names.get(t.name, t.name): t for t in info.outputs}
    detector = _detector(info, outputs, config)
    classifier = _classifier(info, outputs) if detector is None else None
    if detector is None and classifier is None:
        raise FailedPreconditionError(
            f"mlmodel {config.mlmodel_name!r} fits neither a detector (outputs location [1,N,4] + score [1,N], "
            f"optional category and n_detections) nor a classifier (output probability [1,C] or a single output). "
            f"Its outputs are {_describe(info.outputs)}; name them with the attribute 'remap_output_names'.")
    return Plan(input_name=image.name, input=_input_spec(image, config), detector=detector, classifier=classifier,
                labels=_labels(info, config))


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


def _input_spec(tensor: TensorInfo, config: VisionConfig) -> InputSpec:
    channels_first = tensor.shape[1] == 3 and tensor.shape[3] != 3
    height, width = (tensor.shape[2], tensor.shape[3]) if channels_first else (tensor.shape[1], tensor.shape[2])
    # Each of mean and std: the config's, else the model metadata's, else the default (in tensorize).
    mean = config.mean or _from_metadata(tensor, "normalization_mean")
    std = config.std or _from_metadata(tensor, "normalization_std")
    quant = _quant(tensor)
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


def _detector(info: ModelInfo, outputs: dict[str, TensorInfo], config: VisionConfig) -> DetectorPlan | None:
    location, category, score, count = (_role(outputs, role) for role in ("location", "category", "score", "n_detections"))
    if location is None or score is None:
        location, category, score, count = _by_shape(info.outputs)
    if location is None or score is None:
        return None
    meta_order = location.extra.get("boxOrder")
    order = config.box_order or (tuple(int(v) for v in meta_order) if meta_order else DEFAULT_BOX_ORDER)
    units = location.extra.get("box_coordinate_type")
    return DetectorPlan(location=location.name, score=score.name, category=category.name if category else None,
                        count=count.name if count else None, box_order=tuple(order),
                        normalized={"ratio": True, "pixel": False}.get(str(units)), score_quant=_quant(score),
                        location_quant=_quant(location))


def _role(outputs: dict[str, TensorInfo], role: str) -> TensorInfo | None:
    return next((outputs[name] for name in _ROLE_NAMES[role] if name in outputs), None)


def _by_shape(tensors: tuple[TensorInfo, ...]) -> tuple[TensorInfo | None, ...]:
    """Guess detector roles from shapes: [1,N,4] boxes, [1] count, then [1,N] classes and scores in that order."""
    boxes = [t for t in tensors if len(t.shape) == 3 and t.shape[-1] == 4]
    counts = [t for t in tensors if len(t.shape) == 1 and t.shape[0] in (1, -1)]
    flat = [t for t in tensors if len(t.shape) == 2]
    class_scores = [t for t in tensors if len(t.shape) == 3 and t.shape[-1] != 4]
    if len(boxes) != 1:
        return None, None, None, None
    count = counts[0] if len(counts) == 1 else None
    if len(flat) == 2:
        ints = [t for t in flat if t.dtype.startswith(("int", "uint"))]
        category = ints[0] if len(ints) == 1 else flat[0]
        score = flat[1] if category is flat[0] else flat[0]
        return boxes[0], category, score, count
    if len(flat) == 1:
        return boxes[0], None, flat[0], count  # scores only: every box is class 0
    if len(class_scores) == 1:
        return boxes[0], None, class_scores[0], count
    return None, None, None, None


def _classifier(info: ModelInfo, outputs: dict[str, TensorInfo]) -> ClassifierPlan | None:
    tensor = outputs.get("probability") or (info.outputs[0] if len(info.outputs) == 1 else None)
    return None if tensor is None else ClassifierPlan(probability=tensor.name, quant=_quant(tensor))


def _quant(tensor: TensorInfo) -> Quant:
    if tensor.dtype in ("float32", "float16", "float64"):
        return Quant()
    return Quant(float(tensor.extra.get("scale", 0.0)), int(tensor.extra.get("zero_point", 0)))


def _labels(info: ModelInfo, config: VisionConfig) -> tuple[str, ...]:
    """label_path of the service, else the labels file the mlmodel names (Viam's extra["labels"]), else none."""
    if config.labels is not None:
        return config.labels
    for tensor in info.outputs:
        path = tensor.extra.get("labels")
        if isinstance(path, str) and path:
            return read_label_file(path)
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
