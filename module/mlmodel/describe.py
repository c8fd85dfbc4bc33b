"""Build the Metadata answer from the interpreter (dtypes, shapes, quantization) and the TFLite model metadata
(names, descriptions, box layout, normalization, label files)."""

from __future__ import annotations

from typing import Any

import numpy as np

from module.mlmodel.box_order import viam_order_from_tflite_index
from module.mlmodel.graph import PostProcessOutputs
from module.mlmodel.tflite_metadata import ModelMetadata, TensorMetadata
from module.mlmodel.types import FileInfo, ModelInfo, TensorInfo
from module.mlmodel.ultralytics import UltralyticsMetadata

_LABEL_TYPES = {"TENSOR_VALUE_LABELS": "tensor_value", "TENSOR_AXIS_LABELS": "tensor_axis"}


def describe_model(interpreter: Any, meta: ModelMetadata | None, labels_path: str, *, fallback_name: str,
                   ultralytics: UltralyticsMetadata | None = None,
                   postprocess: PostProcessOutputs | None = None) -> ModelInfo:
    """Metadata of a warmed-up interpreter (outputs have their real shapes after one invoke).

    What the file says about its outputs travels in each output's ``extra`` (so it reaches vision services through
    the Metadata RPC too): ``postprocess_role`` (boxes, classes, scores, count) for outputs of a
    ``TFLite_Detection_PostProcess`` op, and ``ultralytics_*`` keys (task, end2end, kpt_shape, classes, version,
    imgsz) for Ultralytics exports, whose class names become the ``labels`` file.
    """
    in_meta = meta.inputs if meta and len(meta.inputs) == len(interpreter.get_input_details()) else ()
    out_meta = meta.outputs if meta and len(meta.outputs) == len(interpreter.get_output_details()) else ()
    inputs = _tensors(interpreter, interpreter.get_input_details(), in_meta, labels_path="")
    outputs = _tensors(interpreter, interpreter.get_output_details(), out_meta, labels_path=labels_path,
                       facts=_file_facts(ultralytics), roles=postprocess.roles if postprocess else ())
    # Metadata names are singular ("location", "score") in current models, plural in older SSDs ("locations").
    names = {t.name.removesuffix("s") for t in outputs}
    kind = "tflite_detector" if {"location", "score"} <= names else (
        "tflite_classifier" if "probability" in names else "tflite")
    return ModelInfo(name=(meta.name if meta and meta.name else fallback_name), type=kind,
                     description=meta.description if meta else "", inputs=inputs, outputs=outputs)


def _file_facts(meta: UltralyticsMetadata | None) -> dict[str, Any]:
    if meta is None:
        return {}
    facts: dict[str, Any] = {"ultralytics_task": meta.task, "ultralytics_end2end": meta.end2end,
                             "ultralytics_kpt_shape": list(meta.kpt_shape) if meta.kpt_shape else None,
                             "ultralytics_classes": len(meta.names) if meta.names else None,
                             "ultralytics_version": meta.version,
                             "ultralytics_imgsz": list(meta.imgsz) if meta.imgsz else None}
    return {key: value for key, value in facts.items() if value is not None}


def _tensors(interpreter: Any, details: list[dict[str, Any]], metas: tuple[TensorMetadata, ...],
             labels_path: str, facts: dict[str, Any] | None = None, roles: tuple[str, ...] = ()) -> tuple[TensorInfo, ...]:
    raw_names = [d["name"] for d in details]
    meta_names = [m.name for m in metas]
    # Metadata names ("location", "score", ...) are what vision services look for; use them only when usable.
    use_meta = bool(metas) and all(meta_names) and len(set(meta_names)) == len(meta_names)
    result = []
    file_facts = dict(facts or {})
    for i, detail in enumerate(details):
        meta = metas[i] if metas else None
        extra: dict[str, Any] = {}
        _quantization(detail, extra)
        if meta is not None:
            _layout(meta, extra)
        if labels_path:
            extra["labels"] = labels_path
        if i < len(roles) and roles[i]:
            extra["postprocess_role"] = roles[i]
        extra.update(file_facts)
        result.append(TensorInfo(
            name=meta_names[i] if use_meta else raw_names[i],
            dtype=np.dtype(detail["dtype"]).name,
            shape=_shape(interpreter, detail),
            description=meta.description if meta else "",
            associated_files=tuple(FileInfo(f.name, f.description, _LABEL_TYPES.get(f.type, ""))
                                   for f in (meta.associated_files if meta else ())),
            extra=extra,
        ))
    return tuple(result)


def _shape(interpreter: Any, detail: dict[str, Any]) -> tuple[int, ...]:
    signature = detail.get("shape_signature")
    if signature is not None and len(signature) and any(int(d) == -1 for d in signature):
        return tuple(int(d) for d in signature)
    return tuple(int(d) for d in interpreter.get_tensor(detail["index"]).shape)


def _quantization(detail: dict[str, Any], extra: dict[str, Any]) -> None:
    params = detail.get("quantization_parameters") or {}
    scales = [float(s) for s in params.get("scales", [])]
    zero_points = [int(z) for z in params.get("zero_points", [])]
    if not scales:
        return
    if len(scales) == 1:
        extra["scale"], extra["zero_point"] = scales[0], zero_points[0] if zero_points else 0
    else:
        extra["scales"], extra["zero_points"] = scales, zero_points
        extra["quantized_dimension"] = int(params.get("quantized_dimension", 0))


def _layout(meta: TensorMetadata, extra: dict[str, Any]) -> None:
    if meta.box_index is not None and len(meta.box_index) == 4 and sorted(meta.box_index) == [0, 1, 2, 3]:
        # TFLite's index[k] is the position of coordinate k; Viam's boxOrder[i] is the coordinate at position i.
        extra["boxOrder"] = list(viam_order_from_tflite_index(meta.box_index))
    if meta.box_coordinate_type:
        extra["box_coordinate_type"] = meta.box_coordinate_type.lower()
    if meta.normalization_mean:
        extra["normalization_mean"] = list(meta.normalization_mean)
    if meta.normalization_std:
        extra["normalization_std"] = list(meta.normalization_std)
    if meta.color_space:
        extra["color_space"] = meta.color_space
