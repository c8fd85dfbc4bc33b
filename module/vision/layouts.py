"""Detector and classifier output layouts: which one a model has, and their fast, vectorised decoders.

Layouts (``C`` classes, ``N`` anchors, ``K`` detection slots):

* ``ssd``: post-processed outputs of a ``TFLite_Detection_PostProcess`` op (boxes ``[1,K,4]``, classes ``[1,K]``,
  scores ``[1,K]``, count ``[1]``; TF1 and TF2 exports list them in different orders), or any outputs named
  ``location`` / ``score`` (+ ``category``, ``n_detections``). Decoded by :mod:`module.vision.results`.
* ``yolov8``: Ultralytics v8 / 11 / 12 heads, one output ``[1, 4+C, N]`` (or transposed ``[1, N, 4+C]``): centre
  x, centre y, width, height, then C class scores; score = max, class = argmax; no objectness.
* ``yolov5``: ``[1, N, 5+C]``: centre x, centre y, width, height, objectness, C class scores; score = objectness x
  class score.
* ``end2end``: NMS inside the model (YOLOv10, YOLO26): ``[1, K, 6]`` = x1, y1, x2, y2, score, class.
* ``classifier``: ``[1, C]`` or ``[C]``, and nothing else.

The layout is chosen once per model (:func:`choose_layout`): an explicit ``output_layout`` first, then what the file
says (Ultralytics metadata: task, end2end, class names; TFLite metadata names), then the graph (the post-process
op's own output order), then shapes (anchor counts computed from the input size tell v8 from v5 from an end-to-end
head). Anything else is refused with :class:`FailedPreconditionError` listing every output and the layouts above.

Decoders (:func:`decode`) turn raw (possibly quantised) outputs into candidate boxes in model-input pixels. They
filter by score before touching most of the tensor: for a quantised output the threshold is applied to the raw
integers (``(q - zp) * scale`` is monotonic), so only the surviving columns are dequantised; then the
``max_candidates`` best go to non-maximum suppression (module/vision/boxes.py ``nms``, shared with the SSD path).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from module.errors import ConfigError, FailedPreconditionError

LAYOUTS: Final = ("ssd", "yolov8", "yolov5", "end2end", "classifier")
OUTPUT_LAYOUT_CHOICES: Final = ("auto", *LAYOUTS)
SSD_ROLES: Final = ("location", "category", "score", "n_detections")
ROLES_BY_LAYOUT: Final = {"ssd": frozenset(SSD_ROLES), "classifier": frozenset({"probability"}),
                          "yolov8": frozenset(), "yolov5": frozenset(), "end2end": frozenset()}
SUPPORTED_TEXT: Final = (
    "ssd (TFLite_Detection_PostProcess outputs: boxes [1,K,4], classes [1,K], scores [1,K], count [1], or outputs "
    "named location/score/category/n_detections), yolov8 ([1,4+C,N] or [1,N,4+C]: cx,cy,w,h + C class scores), "
    "yolov5 ([1,N,5+C]: cx,cy,w,h,objectness + C class scores), end2end ([1,K,6]: x1,y1,x2,y2,score,class), "
    "classifier ([1,C] or [C])"
)
DEFAULT_MAX_CANDIDATES: Final = 1000
NORMALIZED_LIMIT: Final = 2.0
"""Boxes whose largest coordinate is at most this are taken as normalised to the input size (0..1)."""
_STRIDE_SETS: Final = ((8, 16, 32), (8, 16, 32, 64))
_SEGMENT_MASKS: Final = 32

# Names models use for each role (the COCO SSD's TFLite metadata says "locations", "classes", "scores").
ROLE_NAMES: Final = {
    "location": ("location", "locations", "boxes", "detection_boxes"),
    "category": ("category", "categories", "classes", "detection_classes"),
    "score": ("score", "scores", "detection_scores"),
    "n_detections": ("n_detections", "number of detections", "num_detections", "count"),
    "probability": ("probability", "probabilities"),
}
_GRAPH_ROLES: Final = {"boxes": "location", "classes": "category", "scores": "score", "count": "n_detections"}


@dataclass(frozen=True, slots=True)
class OutputTensor:
    """One model output as the layout chooser sees it.

    Attributes:
        name: The output name the model reports.
        shape: Its shape (``-1`` for a dimension that varies).
        dtype: numpy dtype name.
        graph_role: Role from the graph's post-process op (``boxes``, ``classes``, ``scores``, ``count``) or ``""``.
    """

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"
    graph_role: str = ""


@dataclass(frozen=True, slots=True)
class ModelHints:
    """What the model file says about itself (all optional).

    Attributes:
        task: Ultralytics task (``detect``, ``segment``, ``pose``, ``obb``, ``classify``).
        end2end: Ultralytics ``end2end`` flag.
        kpt_shape: Ultralytics ``kpt_shape`` of a pose model.
        class_count: Number of class names the file carries.
        ultralytics: The file carries Ultralytics metadata.
        input_hw: Model input ``(height, width)`` (tells anchor counts apart), if fixed.
    """

    task: str | None = None
    end2end: bool | None = None
    kpt_shape: tuple[int, int] | None = None
    class_count: int | None = None
    ultralytics: bool = False
    input_hw: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class Layout:
    """The chosen layout and everything its decoder needs.

    Attributes:
        kind: One of :data:`LAYOUTS`.
        reason: Why it was chosen (shown by ``get_config`` and in the log).
        roles: Role -> output name (``ssd``: location, score, optional category and n_detections; ``classifier``:
            probability; YOLO layouts and ``end2end``: ``predictions``).
        transposed: ``yolov8`` only: the output is ``[1, N, 4+C]`` instead of ``[1, 4+C, N]``.
        num_classes: Class scores per anchor (YOLO layouts), or None.
        extra: Rows (``yolov8``) or columns (``end2end``) after the class scores that are not classes (pose
            keypoints, segmentation mask coefficients); they are dropped.
        note: What was dropped or assumed, for the log and ``get_config`` ("" when nothing).
        ultralytics: Chosen from Ultralytics metadata (an Ultralytics classifier wants its own preprocessing).
    """

    kind: str
    reason: str
    roles: Mapping[str, str] = field(default_factory=dict)
    transposed: bool = False
    num_classes: int | None = None
    extra: int = 0
    note: str = ""
    ultralytics: bool = False

    def describe(self) -> dict[str, Any]:
        return {"layout": self.kind, "reason": self.reason, "outputs": dict(self.roles), "transposed": self.transposed,
                "num_classes": self.num_classes, "dropped": self.extra, "note": self.note}


@dataclass(frozen=True, slots=True)
class Candidates:
    """Decoded detections before NMS: boxes ``(n, 4)`` xyxy in model-input pixels, scores, class ids."""

    boxes: NDArray[np.float32]
    scores: NDArray[np.float32]
    classes: NDArray[np.int64]

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def take(self, index: NDArray[np.intp]) -> Candidates:
        return Candidates(self.boxes[index], self.scores[index], self.classes[index])


# --- choosing ---------------------------------------------------------------------------------------------------------

def describe_outputs(outputs: Sequence[OutputTensor]) -> str:
    return ", ".join(f"{o.name!r} {o.dtype} {list(o.shape)}" for o in outputs) or "none"


def check_remap(remap: Mapping[str, str], output_names: Sequence[str]) -> None:
    """A ``remap_output_names`` entry must name an output of the model (ConfigError naming the entry)."""
    missing = [name for name in remap if name not in output_names]
    if missing:
        entry = missing[0]
        raise ConfigError(f"attribute 'remap_output_names' entry {entry!r}: {remap[entry]!r} names no output of the "
                          f"model; its outputs are {', '.join(map(repr, output_names)) or 'none'}")


def choose_layout(outputs: Sequence[OutputTensor], hints: ModelHints = ModelHints(), *, forced: str = "auto",
                  remap: Mapping[str, str] | None = None) -> Layout:
    """Choose the layout of a model's outputs.

    Args:
        outputs: The model outputs, in model order.
        hints: What the file says about itself.
        forced: ``output_layout`` attribute: ``auto`` or one of :data:`LAYOUTS`.
        remap: ``remap_output_names`` (output name -> role); each entry must name an output and a role the
            chosen layout uses.

    Returns:
        The layout.

    Raises:
        ConfigError: ``forced`` is unknown, or a ``remap_output_names`` entry names no output or a role the layout
            cannot use.
        FailedPreconditionError: No supported layout fits (the message lists the outputs and the layouts).
    """
    remap = dict(remap or {})
    if forced not in OUTPUT_LAYOUT_CHOICES:
        raise ConfigError(f"attribute 'output_layout' must be one of {', '.join(OUTPUT_LAYOUT_CHOICES)}, got {forced!r}")
    check_remap(remap, [o.name for o in outputs])
    named = _named_roles(outputs, remap)
    layout = _forced(forced, outputs, hints, named) if forced != "auto" else _auto(outputs, hints, named)
    usable = ROLES_BY_LAYOUT[layout.kind]
    for name, role in remap.items():
        if role not in usable:
            raise ConfigError(f"attribute 'remap_output_names' entry {name!r}: {role!r}: the model's outputs have the "
                              f"{layout.kind} layout ({layout.reason}), which has no {role!r} output"
                              + (f"; its roles are {', '.join(sorted(usable))}" if usable else ""))
    return layout


def _refuse(outputs: Sequence[OutputTensor], why: str) -> FailedPreconditionError:
    return FailedPreconditionError(
        f"{why}. Its outputs are {describe_outputs(outputs)}. Supported layouts: {SUPPORTED_TEXT}. Name the roles "
        "with 'remap_output_names' or choose a layout with 'output_layout'.")


def _named_roles(outputs: Sequence[OutputTensor], remap: Mapping[str, str]) -> dict[str, OutputTensor]:
    by_name = {remap.get(o.name, o.name).lower(): o for o in outputs}
    found: dict[str, OutputTensor] = {}
    for role, names in ROLE_NAMES.items():
        hit = next((by_name[n] for n in names if n in by_name), None)
        if hit is not None:
            found[role] = hit
    return found


def _auto(outputs: Sequence[OutputTensor], hints: ModelHints, named: dict[str, OutputTensor]) -> Layout:
    if hints.ultralytics and hints.task is not None:
        return _ultralytics(outputs, hints)
    if "location" in named and "score" in named:
        return _ssd_layout(named, "outputs named by the model metadata or remap_output_names")
    graph = {_GRAPH_ROLES[o.graph_role]: o for o in outputs if o.graph_role in _GRAPH_ROLES}
    if "location" in graph and "score" in graph:
        return _ssd_layout({**graph, **named}, "roles from the TFLite_Detection_PostProcess op in the graph")
    if "probability" in named and _classifier_shape(named["probability"].shape):
        return Layout("classifier", "output named 'probability'", {"probability": named["probability"].name})
    return _by_shape(outputs, hints)


def _ultralytics(outputs: Sequence[OutputTensor], hints: ModelHints) -> Layout:
    task = hints.task or "detect"
    source = f"Ultralytics metadata (task {task!r}{', end2end' if hints.end2end else ''})"
    if task == "classify":
        single = [o for o in outputs if _classifier_shape(o.shape)]
        if len(single) != 1:
            raise _refuse(outputs, "the Ultralytics metadata says task 'classify' but no single [1,C] output fits")
        return Layout("classifier", source, {"probability": single[0].name}, num_classes=single[0].shape[-1],
                      ultralytics=True)
    if task == "obb":
        raise _refuse(outputs, "the Ultralytics metadata says task 'obb' (rotated boxes): their angle cannot be "
                               "expressed as a Viam detection box, so this model is not served")
    if task not in ("detect", "pose", "segment"):
        raise _refuse(outputs, f"the Ultralytics metadata says task {task!r}, which the vision service does not serve")
    heads = [o for o in outputs if len(o.shape) == 3 and o.shape[0] in (1, -1)]
    if len(heads) != 1:
        raise _refuse(outputs, f"the Ultralytics metadata says task {task!r} but the model does not have exactly one "
                               "[1, rows, anchors] output")
    head = heads[0]
    if hints.end2end:
        return _end2end(head, hints, source)
    return _yolov8(head, hints, source, outputs)


def _extra_for(task: str, hints: ModelHints) -> int | None:
    if task == "pose":
        return hints.kpt_shape[0] * hints.kpt_shape[1] if hints.kpt_shape else None
    if task == "segment":
        return _SEGMENT_MASKS
    return 0


def _end2end(head: OutputTensor, hints: ModelHints, source: str) -> Layout:
    cols = head.shape[2]
    if cols < 6:
        raise _refuse([head], f"{source} but the output has {cols} columns, fewer than x1,y1,x2,y2,score,class")
    extra = cols - 6
    note = ""
    if extra:
        note = (f"{extra} column(s) after x1,y1,x2,y2,score,class ({hints.task or 'unknown'} data) are dropped: only "
                "the boxes are served")
    return Layout("end2end", source, {"predictions": head.name}, num_classes=hints.class_count, extra=extra, note=note)


def _yolov8(head: OutputTensor, hints: ModelHints, source: str, outputs: Sequence[OutputTensor]) -> Layout:
    task = hints.task or "detect"
    a, b = head.shape[1], head.shape[2]
    anchors = _anchor_counts(hints.input_hw)
    known_extra = _extra_for(task, hints)
    expected = 4 + hints.class_count + known_extra if hints.class_count and known_extra is not None else None
    if expected is not None and expected in (a, b) and a != b:
        transposed = b == expected
    elif anchors and (a in anchors) != (b in anchors):
        transposed = a in anchors
    else:
        transposed = b < a  # anchors outnumber rows in every real head
    rows = b if transposed else a
    if hints.class_count:
        classes = hints.class_count
    elif known_extra is not None:
        classes = rows - 4 - known_extra
    else:
        raise _refuse(outputs, f"{source} without kpt_shape or class names: the keypoint rows cannot be told "
                               "from class rows")
    extra = rows - 4 - classes
    if classes < 1 or extra < 0 or (task == "detect" and extra):
        raise _refuse(outputs, f"{source}: {classes} classes, but output {head.name!r} has {rows} rows per anchor "
                               f"(expected 4 box rows + {classes} class rows"
                               + (f" + {known_extra} {task} rows)" if known_extra else ")"))
    note = ""
    if extra:
        what = "keypoint" if task == "pose" else "mask-coefficient"
        note = f"{extra} {what} rows after the {classes} class rows are dropped: only the boxes are served"
    return Layout("yolov8", source, {"predictions": head.name}, transposed=transposed, num_classes=classes, extra=extra,
                  note=note)


def _anchor_counts(input_hw: tuple[int, int] | None) -> set[int]:
    """Anchor-point counts of YOLO heads at this input size (strides 8-32, and 8-64 for P6 models)."""
    if input_hw is None or input_hw[0] <= 0 or input_hw[1] <= 0:
        return set()
    h, w = input_hw
    return {sum(-(-h // s) * -(-w // s) for s in strides) for strides in _STRIDE_SETS}


def _by_shape(outputs: Sequence[OutputTensor], hints: ModelHints) -> Layout:
    boxes = [o for o in outputs if len(o.shape) == 3 and o.shape[-1] == 4]
    if len(boxes) == 1 and len(outputs) in (2, 3, 4):
        ssd = _ssd_by_shape(outputs, boxes[0])
        if ssd is not None:
            return ssd
    if len(outputs) == 1:
        only = outputs[0]
        if _classifier_shape(only.shape):
            return Layout("classifier", f"one output of shape {list(only.shape)}", {"probability": only.name},
                          num_classes=only.shape[-1])
        if len(only.shape) == 3 and only.shape[0] in (1, -1):
            yolo = _yolo_by_shape(only, hints)
            if yolo is not None:
                return yolo
    raise _refuse(outputs, "the model's outputs fit no supported layout")


def _yolo_by_shape(only: OutputTensor, hints: ModelHints) -> Layout | None:
    a, b = only.shape[1], only.shape[2]
    anchors = _anchor_counts(hints.input_hw)
    size = f"{hints.input_hw[1]}x{hints.input_hw[0]}" if hints.input_hw else ""
    v5_anchors = {3 * n for n in anchors}
    if b in v5_anchors and a >= 6 and a not in anchors:  # [1, 5+C, 3N]: a transposed YOLOv5, not seen in exports
        return None
    if a in v5_anchors and b >= 6:
        return Layout("yolov5", f"shape {list(only.shape)}: {a} = 3 anchors x the grid cells of a {size} input",
                      {"predictions": only.name}, num_classes=b - 5)
    if b in anchors and a >= 5:
        return Layout("yolov8", f"shape {list(only.shape)}: {b} anchor points of a {size} input", {"predictions": only.name},
                      num_classes=a - 4)
    if a in anchors and b >= 5:
        return Layout("yolov8", f"shape {list(only.shape)}: {a} anchor points of a {size} input (transposed)",
                      {"predictions": only.name}, transposed=True, num_classes=b - 4)
    if b == 6 and a not in anchors and a not in v5_anchors and a >= 1:
        return Layout("end2end", f"shape {list(only.shape)}: {a} rows of x1,y1,x2,y2,score,class",
                      {"predictions": only.name})
    return None


def _ssd_by_shape(outputs: Sequence[OutputTensor], boxes: OutputTensor) -> Layout | None:
    """Post-processed outputs without names or graph: roles by shape, scores vs classes by the export's order."""
    counts = [o for o in outputs if len(o.shape) == 1 and o.shape[0] in (1, -1)]
    flat = [o for o in outputs if len(o.shape) == 2]
    class_scores = [o for o in outputs if len(o.shape) == 3 and o is not boxes]
    count = counts[0] if len(counts) == 1 else None
    roles = {"location": boxes.name}
    if count is not None:
        roles["n_detections"] = count.name
    if len(flat) == 2:
        ints = [o for o in flat if o.dtype.startswith(("int", "uint"))]
        if len(ints) == 1:
            category, reason = ints[0], "integer class ids"
        else:
            boxes_first = outputs.index(boxes) < outputs.index(flat[0])
            # TF1 lists boxes, classes, scores, count; TF2 lists scores, boxes, count, classes.
            category = flat[0] if boxes_first else flat[1]
            reason = "no metadata names and no post-process op: classes/scores assumed from the " + (
                "TF1 output order (boxes, classes, scores, count)" if boxes_first else
                "TF2 output order (scores, boxes, count, classes)")
        score = flat[1] if category is flat[0] else flat[0]
        return Layout("ssd", f"shapes ({reason})", {**roles, "category": category.name, "score": score.name})
    if len(flat) == 1:
        return Layout("ssd", "shapes: boxes [1,K,4] and one score [1,K] (every box is class 0)",
                      {**roles, "score": flat[0].name})
    if len(class_scores) == 1:
        return Layout("ssd", "shapes: boxes [1,N,4] and class scores [1,N,C] (class = argmax)",
                      {**roles, "score": class_scores[0].name})
    return None


def _ssd_layout(found: Mapping[str, OutputTensor], reason: str) -> Layout:
    return Layout("ssd", reason, {role: found[role].name for role in SSD_ROLES if role in found})


def _classifier_shape(shape: tuple[int, ...]) -> bool:
    return (len(shape) == 2 and shape[0] in (1, -1) and shape[1] >= 1) or (len(shape) == 1 and shape[0] > 1)


def _forced(kind: str, outputs: Sequence[OutputTensor], hints: ModelHints, named: dict[str, OutputTensor]) -> Layout:
    reason = "attribute 'output_layout'"
    if kind == "ssd":
        graph = {_GRAPH_ROLES[o.graph_role]: o for o in outputs if o.graph_role in _GRAPH_ROLES}
        found = {**graph, **named}
        if "location" in found and "score" in found:
            return _ssd_layout(found, reason)
        boxes = [o for o in outputs if len(o.shape) == 3 and o.shape[-1] == 4]
        layout = _ssd_by_shape(outputs, boxes[0]) if len(boxes) == 1 else None
        if layout is None:
            raise _refuse(outputs, "'output_layout' is 'ssd' but no boxes [1,K,4] + scores [1,K] outputs were found")
        return Layout("ssd", f"{reason}; {layout.reason}", layout.roles)
    if kind == "classifier":
        single = named.get("probability") or (outputs[0] if len(outputs) == 1 else None)
        if single is None or not _classifier_shape(single.shape):
            raise _refuse(outputs, "'output_layout' is 'classifier' but there is no single [1,C] or [C] output")
        return Layout("classifier", reason, {"probability": single.name}, num_classes=single.shape[-1])
    heads = [o for o in outputs if len(o.shape) == 3 and o.shape[0] in (1, -1)]
    if len(heads) != 1:
        raise _refuse(outputs, f"'output_layout' is {kind!r} but the model does not have exactly one [1, A, B] output")
    head = heads[0]
    a, b = head.shape[1], head.shape[2]
    if kind == "end2end":
        if b < 6:
            raise _refuse(outputs, "'output_layout' is 'end2end' but the output has fewer than 6 columns")
        return Layout("end2end", reason, {"predictions": head.name}, extra=b - 6,
                      note=f"{b - 6} extra column(s) dropped" if b > 6 else "")
    if kind == "yolov5":
        if b < 6:
            raise _refuse(outputs, "'output_layout' is 'yolov5' but the output has fewer than 5+1 columns")
        return Layout("yolov5", reason, {"predictions": head.name}, num_classes=b - 5)
    if hints.ultralytics and hints.task in ("detect", "pose", "segment"):
        return _yolov8(head, hints, reason, outputs)
    anchors = _anchor_counts(hints.input_hw)
    transposed = a in anchors if anchors and (a in anchors) != (b in anchors) else a > b
    rows = b if transposed else a
    if rows < 5:
        raise _refuse(outputs, "'output_layout' is 'yolov8' but the output has fewer than 4+1 rows")
    return Layout("yolov8", reason, {"predictions": head.name}, transposed=transposed, num_classes=rows - 4)


# --- decoding ---------------------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Quantization:
    """An output's quantisation (scale 0: not quantised), as every decoder and the SSD/classifier paths read it."""

    scale: float = 0.0
    zero_point: int = 0

    @property
    def quantized(self) -> bool:
        return self.scale > 0


def dequantize(values: NDArray[Any], quant: Quantization) -> NDArray[np.float32]:
    """``(q - zero_point) * scale`` as float32; float arrays (or no scale) are only cast, not copied."""
    arr = np.asarray(values)
    if not quant.quantized or np.issubdtype(arr.dtype, np.floating):
        return arr.astype(np.float32, copy=False)
    out = arr.astype(np.float32)
    out -= np.float32(quant.zero_point)
    out *= np.float32(quant.scale)
    return out


def _raw_threshold(threshold: float, values: NDArray[Any], quant: Quantization) -> float:
    """The threshold in the output's own units: ``score > t`` <=> ``raw > t / scale + zp`` (scale > 0)."""
    if not quant.quantized or np.issubdtype(values.dtype, np.floating):
        return threshold
    return threshold / quant.scale + quant.zero_point


def decode(layout: Layout, output: NDArray[Any], quant: Quantization, *, input_size: tuple[int, int],
           min_score: float, max_candidates: int = DEFAULT_MAX_CANDIDATES,
           normalized: bool | None = None) -> Candidates:
    """Decode a YOLO-family or end-to-end output into candidates scoring above ``min_score``.

    Args:
        layout: A ``yolov8``, ``yolov5`` or ``end2end`` layout.
        output: The raw output array (any float or integer dtype).
        quant: The output's quantisation (``scale == 0``: not quantised).
        input_size: Model input ``(width, height)``: normalised boxes are scaled by it.
        min_score: Keep scores at or above this (the smallest threshold any label has).
        max_candidates: Keep at most this many candidates, the best-scoring ones.
        normalized: Whether boxes are 0..1; None to tell from the values (largest coordinate <= 2).

    Returns:
        The candidates, best score first, boxes ``xyxy`` in model-input pixels.
    """
    arr = np.asarray(output)
    if layout.kind == "yolov8":
        return _decode_v8(layout, arr, quant, input_size, min_score, max_candidates, normalized)
    if layout.kind == "yolov5":
        return _decode_v5(layout, arr, quant, input_size, min_score, max_candidates, normalized)
    if layout.kind == "end2end":
        return _decode_e2e(arr, quant, input_size, min_score, max_candidates, normalized)
    raise ValueError(f"layout {layout.kind!r} has no YOLO decoder")


def _empty() -> Candidates:
    return Candidates(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))


def _top(scores: NDArray[Any], limit: int) -> NDArray[np.intp]:
    """Indices of the ``limit`` best scores, best first (ties in index order)."""
    if limit > 0 and scores.size > limit:
        part = np.argpartition(-scores, limit - 1)[:limit]
        return part[np.argsort(-scores[part], kind="stable")]
    return np.argsort(-scores, kind="stable")


def _scale_boxes(boxes: NDArray[np.float32], input_size: tuple[int, int], normalized: bool) -> NDArray[np.float32]:
    if normalized:
        boxes *= np.array([input_size[0], input_size[1]] * 2, dtype=np.float32)
    return boxes


def _cxcywh_to_xyxy(b: NDArray[np.float32]) -> NDArray[np.float32]:
    half = b[:, 2:4] * np.float32(0.5)
    return np.concatenate([b[:, 0:2] - half, b[:, 0:2] + half], axis=1)


def _looks_normalized(coords: NDArray[Any], quant: Quantization) -> bool:
    finite = dequantize(np.asarray([np.nanmax(coords), np.nanmin(coords)]), quant) if coords.size else np.zeros(2)
    return bool(np.all(np.abs(finite[np.isfinite(finite)]) <= NORMALIZED_LIMIT))


def _decode_v8(layout: Layout, arr: NDArray[Any], quant: Quantization, input_size: tuple[int, int], min_score: float,
               limit: int, normalized: bool | None) -> Candidates:
    grid = arr.reshape(arr.shape[-2], arr.shape[-1])
    rows = grid.T if layout.transposed else grid  # [4+C+extra, N], a view
    classes_n = layout.num_classes or rows.shape[0] - 4
    cls = rows[4 : 4 + classes_n]
    best = cls.max(axis=0)
    keep = np.flatnonzero(best >= _raw_threshold(min_score, arr, quant))
    if keep.size == 0:
        return _empty()
    keep = keep[_top(best[keep], limit)]
    scores = dequantize(best[keep], quant)
    class_ids = cls[:, keep].argmax(axis=0).astype(np.int64)
    boxes = dequantize(np.ascontiguousarray(rows[0:4, keep].T), quant).copy()
    if normalized is None:
        normalized = _looks_normalized(rows[0:4], quant)
    return Candidates(_cxcywh_to_xyxy(_scale_boxes(boxes, input_size, normalized)), scores, class_ids)


def _decode_v5(layout: Layout, arr: NDArray[Any], quant: Quantization, input_size: tuple[int, int], min_score: float,
               limit: int, normalized: bool | None) -> Candidates:
    grid = arr.reshape(arr.shape[-2], arr.shape[-1])  # [N, 5+C]
    objectness = grid[:, 4]
    keep = np.flatnonzero(objectness >= _raw_threshold(min_score, arr, quant))
    if keep.size == 0:
        return _empty()
    rows = dequantize(grid[keep], quant)
    classes_n = layout.num_classes or grid.shape[1] - 5
    conf = rows[:, 5 : 5 + classes_n] * rows[:, 4:5]
    class_ids = conf.argmax(axis=1)
    scores = conf[np.arange(conf.shape[0]), class_ids]
    good = np.flatnonzero(scores >= np.float32(min_score))
    good = good[_top(scores[good], limit)]
    if normalized is None:
        normalized = _looks_normalized(grid[:, 0:4], quant)
    boxes = rows[good, 0:4].copy()
    return Candidates(_cxcywh_to_xyxy(_scale_boxes(boxes, input_size, normalized)), scores[good].astype(np.float32),
                      class_ids[good].astype(np.int64))


def _decode_e2e(arr: NDArray[Any], quant: Quantization, input_size: tuple[int, int], min_score: float, limit: int,
                normalized: bool | None) -> Candidates:
    grid = dequantize(arr.reshape(arr.shape[-2], arr.shape[-1]), quant)  # [K, 6+], small
    scores = grid[:, 4]
    class_raw = grid[:, 5]
    keep = np.flatnonzero((scores >= np.float32(min_score)) & np.isfinite(class_raw) & (class_raw >= 0)
                          & np.isfinite(grid[:, 0:4]).all(axis=1))
    if keep.size == 0:
        return _empty()
    keep = keep[_top(scores[keep], limit)]
    if normalized is None:
        normalized = _looks_normalized(grid[keep, 0:4], Quantization())
    boxes = _scale_boxes(grid[keep, 0:4].copy(), input_size, normalized)
    return Candidates(boxes, scores[keep].copy(), np.rint(class_raw[keep]).astype(np.int64))
