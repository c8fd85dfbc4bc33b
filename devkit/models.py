"""Tiny synthetic TFLite models for tests, built in memory with devkit.tflite_writer.

Every function returns model bytes that load and invoke in ai-edge-litert and tflite-runtime. Detector and
classifier outputs are constants pushed through a RESHAPE, so ``invoke`` yields them whatever the input.

Runtime limit: tflite-runtime 2.14's ``Interpreter.set_tensor`` rejects uint16 arrays ("Got value of type NOTYPE");
the uint16 passthrough model itself runs, and its input can be written through ``interpreter.tensor(i)()``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from devkit.tflite_writer import DTYPES, ModelBuilder
from module.mlmodel.tflite_metadata import AssociatedFile, ModelMetadata, TensorMetadata

PASSTHROUGH_DTYPES = ("int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64")
INPUT_QUANT = {"uint8": (0.0078125, 128), "int8": (0.0078125, 0)}
LABELS_FILE = "labels.txt"


def _reshape_to(b: ModelBuilder, source: int, name: str, dtype: str, shape: Sequence[int], **quant: object) -> int:
    """Add tensor ``name`` computed as RESHAPE(source) and return its index."""
    shape = [int(d) for d in shape]
    out = b.add_tensor(name, dtype, shape, **quant)
    b.add_op("RESHAPE", [source, b.add_const(f"{name}/shape", "int32", shape)], [out], {"new_shape": shape})
    return out


def _const_output(b: ModelBuilder, name: str, dtype: str, values: object, **quant: object) -> int:
    """Add an output tensor whose value is the constant ``values`` (through a RESHAPE op)."""
    array = np.asarray(values, DTYPES[dtype][1])
    const = b.add_const(f"{name}/const", dtype, array, **quant)
    return _reshape_to(b, const, name, dtype, array.shape, **quant)


def _image_input(b: ModelBuilder, dtype: str, size: tuple[int, int]) -> int:
    height, width = size
    scale, zero_point = INPUT_QUANT.get(dtype, (None, None))
    return b.add_tensor("image", dtype, (1, height, width, 3), scale=scale, zero_point=zero_point)


def _image_metadata() -> TensorMetadata:
    return TensorMetadata(name="image", description="Input image.", content="image", color_space="RGB",
                          normalization_mean=(127.5,), normalization_std=(127.5,))


def _labels_bytes(labels: Sequence[str]) -> bytes:
    return ("\n".join(labels) + "\n").encode()


def _feature(name: str, label_type: str | None = None) -> TensorMetadata:
    files = () if label_type is None else (AssociatedFile(LABELS_FILE, "Labels.", label_type),)
    return TensorMetadata(name=name, description=f"The {name}.", content="feature", associated_files=files)


def passthrough_model(dtype: str, shape: tuple[int, ...]) -> bytes:
    """A model whose output ("output") equals its input ("input"): one RESHAPE to the same shape.

    Works for all of :data:`PASSTHROUGH_DTYPES` in both runtimes (see the module docstring for uint16).
    """
    b = ModelBuilder(description=f"{dtype} passthrough")
    x = b.add_tensor("input", dtype, shape)
    return b.build(inputs=[x], outputs=[_reshape_to(b, x, "output", dtype, shape)])


def add_model() -> bytes:
    """Two float32 inputs "a" and "b" of shape [1, 4]; output "sum" = a + b."""
    b = ModelBuilder(description="a + b")
    a, c = b.add_tensor("a", "float32", (1, 4)), b.add_tensor("b", "float32", (1, 4))
    out = b.add_tensor("sum", "float32", (1, 4))
    b.add_op("ADD", [a, c], [out], {"fused_activation_function": "NONE"})
    return b.build(inputs=[a, c], outputs=[out])


def _channel_mean(description: str, shape: tuple[int, ...], axes: tuple[int, ...],
                  signature: tuple[int, ...] | None = None) -> bytes:
    b = ModelBuilder(description=description)
    x = b.add_tensor("input", "float32", shape, shape_signature=signature)
    out = b.add_tensor("mean", "float32", (1, 3))
    b.add_op("MEAN", [x, b.add_const("axes", "int32", list(axes))], [out], {"keep_dims": False})
    return b.build(inputs=[x], outputs=[out])


def dynamic_model() -> bytes:
    """Input "input" float32 with shape_signature [1, -1, -1, 3] (shape [1, 1, 1, 3]); output "mean" [1, 3].

    The output is the per-channel mean over H and W, so it works for any size after ``resize_tensor_input``.
    """
    return _channel_mean("dynamic H, W channel mean", (1, 1, 1, 3), (1, 2), signature=(1, -1, -1, 3))


def nchw_model(size: tuple[int, int] = (8, 8)) -> bytes:
    """Channels-first input "input" float32 [1, 3, H, W]; output "mean" [1, 3] (per-channel mean)."""
    return _channel_mean("NCHW channel mean", (1, 3, *size), (2, 3))


def detector_model(
    boxes: Sequence[Sequence[float]], classes: Sequence[float] | None,
    scores: Sequence[float] | Sequence[Sequence[float]],
    *, box_order: tuple[int, int, int, int] = (1, 0, 3, 2), with_category: bool = True, pixel: bool = False,
    input_size: tuple[int, int] = (32, 32), input_dtype: str = "uint8", metadata: bool = False,
    embedded_labels: Sequence[str] | None = None, count: float | None = None,
) -> bytes:
    """An SSD-style detector that always outputs the given detections.

    Args:
        boxes: N boxes as (left, top, right, bottom). In the location tensor, coordinate k of a box is stored at
            position ``box_order[k]`` (the default (1, 0, 3, 2) gives [ymin, xmin, ymax, xmax] like SSD).
        classes: N class ids (float32 output "category"); ignored when ``with_category`` is False.
        scores: N scores, or with ``with_category=False`` an N x C matrix of per-class scores.
        box_order: Stored as BoundingBoxProperties.index in the metadata (TFLite semantics).
        with_category: True: outputs location [1,N,4], category [1,N], score [1,N], count [1]. False: outputs
            location [1,N,4] and score [1,N,C].
        pixel: Metadata coordinate type PIXEL instead of RATIO (the boxes are written as given).
        input_size: (H, W) of the [1, H, W, 3] input "image".
        input_dtype: dtype of the input (uint8/int8 get quantization parameters).
        metadata: Attach TFLite metadata (names, image normalization 127.5/127.5, bounding box properties).
        embedded_labels: Labels embedded as ``labels.txt``: TENSOR_VALUE_LABELS on "category" (or
            TENSOR_AXIS_LABELS on "score" without a category output). Only used with ``metadata``.
        count: Value of the "number of detections" output (default N).
    """
    b = ModelBuilder(description="constant detector")
    image = _image_input(b, input_dtype, input_size)
    box_array = np.asarray(boxes, np.float32).reshape(-1, 4)
    location = np.zeros_like(box_array)
    location[:, list(box_order)] = box_array
    outputs = [_const_output(b, "location", "float32", location[None])]
    if with_category:
        outputs.append(_const_output(b, "category", "float32", np.asarray(classes, np.float32)[None]))
        outputs.append(_const_output(b, "score", "float32", np.asarray(scores, np.float32)[None]))
        n = len(box_array) if count is None else count
        outputs.append(_const_output(b, "number of detections", "float32", [n]))
    else:
        class_scores = np.asarray(scores, np.float32).reshape(len(box_array), -1)
        outputs.append(_const_output(b, "score", "float32", class_scores[None]))
    if not metadata:
        return b.build(inputs=[image], outputs=outputs)
    label_type = None
    if embedded_labels is not None:
        label_type = "TENSOR_VALUE_LABELS" if with_category else "TENSOR_AXIS_LABELS"
    location_meta = TensorMetadata(
        name="location", description="The locations of the detected boxes.", content="bounding_box",
        box_index=tuple(box_order), box_type="BOUNDARIES", box_coordinate_type="PIXEL" if pixel else "RATIO")
    if with_category:
        out_meta = (location_meta, _feature("category", label_type), _feature("score"),
                    _feature("number of detections"))
    else:
        out_meta = (location_meta, _feature("score", label_type))
    meta = ModelMetadata(name="Synthetic detector", description="Always returns the same detections.", version="1",
                         inputs=(_image_metadata(),), outputs=out_meta)
    files = {} if embedded_labels is None else {LABELS_FILE: _labels_bytes(embedded_labels)}
    return b.build(inputs=[image], outputs=outputs, metadata=meta, files=files)


def classifier_model(
    probs: Sequence[float], *, dtype: str = "float32", input_dtype: str = "uint8",
    input_size: tuple[int, int] = (16, 16), quant: tuple[float, int] | None = None, metadata: bool = False,
    embedded_labels: Sequence[str] | None = None,
) -> bytes:
    """A classifier that always outputs ``probs`` as its [1, C] output "probability".

    Args:
        probs: The C class probabilities (real values; quantized when ``dtype`` is uint8/int8).
        dtype: Output dtype: float32, uint8 or int8.
        input_dtype: dtype of the [1, H, W, 3] input "image".
        input_size: (H, W) of the input.
        quant: Output (scale, zero_point); default (1/256, 0) for uint8 and (1/256, -128) for int8.
        metadata: Attach TFLite metadata (input "image", output "probability").
        embedded_labels: Labels embedded as ``labels.txt`` (TENSOR_AXIS_LABELS on the output). Only with metadata.
    """
    b = ModelBuilder(description="constant classifier")
    image = _image_input(b, input_dtype, input_size)
    values = np.asarray(probs, np.float64)[None]
    quant_args: dict[str, object] = {}
    if dtype in ("uint8", "int8"):
        scale, zero_point = quant or (1 / 256, 0 if dtype == "uint8" else -128)
        info = np.iinfo(DTYPES[dtype][1])
        values = np.clip(np.round(values / scale) + zero_point, info.min, info.max)
        quant_args = {"scale": scale, "zero_point": zero_point}
    output = _const_output(b, "probability", dtype, values, **quant_args)
    if not metadata:
        return b.build(inputs=[image], outputs=[output])
    label_type = None if embedded_labels is None else "TENSOR_AXIS_LABELS"
    meta = ModelMetadata(name="Synthetic classifier", description="Always returns the same probabilities.",
                         version="1", inputs=(_image_metadata(),), outputs=(_feature("probability", label_type),))
    files = {} if embedded_labels is None else {LABELS_FILE: _labels_bytes(embedded_labels)}
    return b.build(inputs=[image], outputs=[output], metadata=meta, files=files)


def slow_model(n: int = 512, layers: int = 24) -> bytes:
    """float32 [1, n, n] -> mean of x @ x @ ... @ x: tens of milliseconds per invoke on one thread, tiny file."""
    b = ModelBuilder(description="slow")
    x = b.add_tensor("input", "float32", (1, n, n))
    current = x
    for i in range(layers):
        y = b.add_tensor(f"matmul{i}", "float32", (1, n, n))
        b.add_op("BATCH_MATMUL", [current, x], [y], {"adj_x": False, "adj_y": False}, options_type="BatchMatMulOptions")
        current = y
    out = b.add_tensor("mean", "float32", (1,))
    b.add_op("MEAN", [current, b.add_const("axes", "int32", [1, 2])], [out], {"keep_dims": False})
    return b.build(inputs=[x], outputs=[out])


def yolo_model(
    output: object, *, dtype: str = "float32", quant: tuple[float, int] | None = None,
    input_size: tuple[int, int] = (64, 64), input_dtype: str = "float32", ultralytics: dict[str, object] | None = None,
    output_name: str = "Identity",
) -> bytes:
    """A YOLO-style model that always outputs ``output`` (e.g. [1, 4+C, N], [1, N, 5+C] or [1, K, 6]).

    Args:
        output: The real values of the single output.
        dtype: Output dtype: float32, uint8 or int8 (quantised with ``quant``).
        quant: Output (scale, zero_point) for integer dtypes.
        input_size: (H, W) of the [1, H, W, 3] input "images".
        input_dtype: Input dtype; int8 inputs get (1/255, -128), uint8 (1/255, 0), like Ultralytics exports.
        ultralytics: Metadata dict appended as a deflated ``metadata.json`` zip member, as Ultralytics 8.4 does.
        output_name: Name of the output tensor.
    """
    import io
    import json
    import zipfile

    b = ModelBuilder(description="constant yolo")
    height, width = input_size
    in_quant = {"int8": (1 / 255, -128), "uint8": (1 / 255, 0)}.get(input_dtype, (None, None))
    image = b.add_tensor("images", input_dtype, (1, height, width, 3), scale=in_quant[0], zero_point=in_quant[1])
    values = np.asarray(output, np.float64)
    quant_args: dict[str, object] = {}
    if dtype in ("uint8", "int8"):
        scale, zero_point = quant or (1 / 255, -128 if dtype == "int8" else 0)
        info = np.iinfo(DTYPES[dtype][1])
        values = np.clip(np.round(values / scale) + zero_point, info.min, info.max)
        quant_args = {"scale": scale, "zero_point": zero_point}
    out = _const_output(b, output_name, dtype, values, **quant_args)
    data = b.build(inputs=[image], outputs=[out])
    if ultralytics is None:
        return data
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("metadata.json", json.dumps({"author": "Ultralytics", **ultralytics}))
    return data + archive.getvalue()
