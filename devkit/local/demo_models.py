"""Two small, real models for the demo, built from TFLite builtin ops with devkit/tflite_writer.py.

* ``colour_detector``: one box per colour (red, green, blue, yellow). Each pixel gets a soft "colour-ness" in
  0..1 (a 1x1 convolution computes e.g. R-G and R-B, the smaller of them must clear a threshold, a logistic makes it
  soft). Rows and columns where enough pixels have the colour are found with mean projections; the first and last of
  them (arg-max over the on/off projection times a rising or falling ramp) give the box. The score is the densest
  8x8 patch of that colour, so a colour that only appears as speckle stays below the usual 0.5.
* ``colour_classifier``: the dominant colour: the share of the image each colour covers, through a softmax.

Both carry TFLite metadata with the names the vision service looks for (location / category / score / number of
detections, probability) and their labels embedded, so they work without any extra vision attributes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Final

import numpy as np
import tflite

from devkit.tflite_writer import ModelBuilder
from module.mlmodel.tflite_metadata import AssociatedFile, ModelMetadata, TensorMetadata

COLOURS: Final = ("red", "green", "blue", "yellow")
DETECTOR_SIZE: Final = 128
CLASSIFIER_SIZE: Final = 64
DETECTOR_FILE: Final = "colour_detector.tflite"
CLASSIFIER_FILE: Final = "colour_classifier.tflite"
_THRESHOLD: Final = 60.0  # how far (0..255) a colour must stand out from the other channels
_SOFTNESS: Final = 12.0  # logistic width, in the same units
_ROW_SHARE: Final = 0.04  # a row/column belongs to a box when this share of it has the colour
_PATCH: Final = 8  # score = densest _PATCH x _PATCH patch
_LABELS: Final = "labels.txt"
# Per colour, four linear terms a*R + b*G + c*B + d; the colour's strength is the smallest of them.
_TERMS: Final[dict[str, list[tuple[float, float, float, float]]]] = {
    "red": [(1, -1, 0, 0), (1, 0, -1, 0), (1, -1, 0, 0), (1, 0, -1, 0)],
    "green": [(-1, 1, 0, 0), (0, 1, -1, 0), (-1, 1, 0, 0), (0, 1, -1, 0)],
    "blue": [(-1, 0, 1, 0), (0, -1, 1, 0), (-1, 0, 1, 0), (0, -1, 1, 0)],
    # yellow: R and G both above B, and R and G within _THRESHOLD of each other
    "yellow": [(1, 0, -1, 0), (0, 1, -1, 0), (-1, 1, 0, 2 * _THRESHOLD), (1, -1, 0, 2 * _THRESHOLD)],
}


def _colour_mask(b: ModelBuilder, size: int) -> tuple[int, int]:
    """Add the uint8 image input and the soft colour mask [1, size, size, K]; returns (input, mask)."""
    k = len(COLOURS)
    image = b.add_tensor("image", "uint8", (1, size, size, 3))
    pixels = b.add_tensor("pixels", "float32", (1, size, size, 3))
    b.add_op("CAST", [image], [pixels], {"in_data_type": "uint8", "out_data_type": "float32"})
    terms = np.array([t for colour in COLOURS for t in _TERMS[colour]], np.float32)
    weights = b.add_const("terms/weights", "float32", (terms[:, :3] / _SOFTNESS).reshape(k * 4, 1, 1, 3))
    bias = b.add_const("terms/bias", "float32", (terms[:, 3] - _THRESHOLD) / _SOFTNESS)
    linear = b.add_tensor("terms", "float32", (1, size, size, k * 4))
    b.add_op("CONV_2D", [pixels, weights, bias], [linear],
             {"padding": tflite.Padding.VALID, "stride_w": 1, "stride_h": 1, "fused_activation_function": "NONE"},
             options_type="Conv2DOptions")
    grouped = b.add_tensor("terms/grouped", "float32", (1, size, size, k, 4))
    shape = [1, size, size, k, 4]
    b.add_op("RESHAPE", [linear, b.add_const("terms/shape", "int32", shape)], [grouped], {"new_shape": shape})
    strength = b.add_tensor("strength", "float32", (1, size, size, k))
    b.add_op("REDUCE_MIN", [grouped, b.add_const("terms/axis", "int32", [4])], [strength], {"keep_dims": False})
    mask = b.add_tensor("mask", "float32", (1, size, size, k))
    b.add_op("LOGISTIC", [strength], [mask])
    return image, mask


def _binary_op(b: ModelBuilder, op: str, a: int, c: int, name: str, shape: Sequence[int],
               dtype: str = "float32") -> int:
    out = b.add_tensor(name, dtype, shape)
    options = {"fused_activation_function": "NONE"} if op in ("MUL", "ADD") else None
    b.add_op(op, [a, c], [out], options)
    return out


def _edges(b: ModelBuilder, projection: int, axis_name: str, n: int) -> tuple[int, int]:
    """First and last index (as 0..1 ratios, the last one exclusive) where ``projection`` [1, K, n] is on."""
    k = len(COLOURS)
    on = _binary_op(b, "GREATER", projection, b.add_const(f"{axis_name}/share", "float32", [_ROW_SHARE]),
                    f"{axis_name}/on", (1, k, n), dtype="bool")
    on_f = b.add_tensor(f"{axis_name}/on_f", "float32", (1, k, n))
    b.add_op("CAST", [on], [on_f], {"in_data_type": "bool", "out_data_type": "float32"})
    ramps = {"first": np.arange(n, 0, -1, dtype=np.float32), "last": np.arange(1, n + 1, dtype=np.float32)}
    edges = []
    for which, ramp in ramps.items():
        weighted = _binary_op(b, "MUL", on_f, b.add_const(f"{axis_name}/{which}/ramp", "float32", ramp),
                              f"{axis_name}/{which}/weighted", (1, k, n))
        index = b.add_tensor(f"{axis_name}/{which}/index", "int32", (1, k))
        b.add_op("ARG_MAX", [weighted, b.add_const(f"{axis_name}/{which}/axis", "int32", [2])], [index],
                 {"output_type": "int32"})
        index_f = b.add_tensor(f"{axis_name}/{which}/index_f", "float32", (1, k))
        b.add_op("CAST", [index], [index_f], {"in_data_type": "int32", "out_data_type": "float32"})
        offset = 1.0 if which == "last" else 0.0  # the last on-row is inside the box: its far edge is index + 1
        shifted = _binary_op(b, "ADD", index_f, b.add_const(f"{axis_name}/{which}/offset", "float32", [offset]),
                             f"{axis_name}/{which}/shifted", (1, k))
        edges.append(_binary_op(b, "MUL", shifted, b.add_const(f"{axis_name}/{which}/scale", "float32", [1.0 / n]),
                                f"{axis_name}/{which}", (1, k)))
    return edges[0], edges[1]


def _feature(name: str, description: str, labels: str | None = None) -> TensorMetadata:
    files = () if labels is None else (AssociatedFile(_LABELS, "Colour names.", labels),)
    return TensorMetadata(name=name, description=description, content="feature", associated_files=files)


def _image_meta() -> TensorMetadata:
    return TensorMetadata(name="image", description="RGB image, 0..255.", content="image", color_space="RGB",
                          normalization_mean=(0.0,), normalization_std=(1.0,))


def _labels_file() -> dict[str, bytes]:
    return {_LABELS: ("\n".join(COLOURS) + "\n").encode()}


def colour_detector(size: int = DETECTOR_SIZE) -> bytes:
    """The colour-region detector: uint8 [1, size, size, 3] -> location [1,K,4] (ymin, xmin, ymax, xmax ratios),
    category [1,K], score [1,K], number of detections [1]."""
    k = len(COLOURS)
    b = ModelBuilder(description="colour-region detector (one box per colour)")
    image, mask = _colour_mask(b, size)
    per_colour = b.add_tensor("mask/per_colour", "float32", (1, k, size, size))
    b.add_op("TRANSPOSE", [mask, b.add_const("mask/perm", "int32", [0, 3, 1, 2])], [per_colour])
    projections = {}
    for axis_name, axis in (("rows", 3), ("cols", 2)):
        projections[axis_name] = b.add_tensor(f"{axis_name}/share_of_pixels", "float32", (1, k, size))
        b.add_op("MEAN", [per_colour, b.add_const(f"{axis_name}/axis", "int32", [axis])], [projections[axis_name]],
                 {"keep_dims": False})
    ymin, ymax = _edges(b, projections["rows"], "rows", size)
    xmin, xmax = _edges(b, projections["cols"], "cols", size)
    location = b.add_tensor("location", "float32", (1, k, 4))
    b.add_op("PACK", [ymin, xmin, ymax, xmax], [location], {"values_count": 4, "axis": 2})
    pooled = b.add_tensor("score/pooled", "float32", (1, size - _PATCH + 1, size - _PATCH + 1, k))
    b.add_op("AVERAGE_POOL_2D", [mask], [pooled], {"padding": tflite.Padding.VALID, "stride_w": 1, "stride_h": 1,
                                                    "filter_width": _PATCH, "filter_height": _PATCH,
                                                    "fused_activation_function": "NONE"},
             options_type="Pool2DOptions")
    score = b.add_tensor("score", "float32", (1, k))
    b.add_op("REDUCE_MAX", [pooled, b.add_const("score/axes", "int32", [1, 2])], [score], {"keep_dims": False})
    category = _constant(b, "category", np.arange(k, dtype=np.float32)[None])
    count = _constant(b, "number of detections", np.array([k], np.float32))
    location_meta = TensorMetadata(name="location", description="Box of each colour, ratios of the image size.",
                                   content="bounding_box", box_index=(1, 0, 3, 2), box_type="BOUNDARIES",
                                   box_coordinate_type="RATIO")
    meta = ModelMetadata(
        name="Colour-region detector", version="1", author="tflite-py demo",
        description=f"One box per colour ({', '.join(COLOURS)}) around the pixels of that colour.",
        inputs=(_image_meta(),),
        outputs=(location_meta, _feature("category", "Colour index.", "TENSOR_VALUE_LABELS"),
                 _feature("score", "Density of the colour's densest 8x8 patch."),
                 _feature("number of detections", "Always the number of colours.")))
    return b.build(inputs=[image], outputs=[location, category, score, count], metadata=meta, files=_labels_file())


def colour_classifier(size: int = CLASSIFIER_SIZE, sharpness: float = 10.0) -> bytes:
    """The dominant-colour classifier: uint8 [1, size, size, 3] -> probability [1, K] (softmax of colour shares)."""
    k = len(COLOURS)
    b = ModelBuilder(description="dominant-colour classifier")
    image, mask = _colour_mask(b, size)
    share = b.add_tensor("share", "float32", (1, k))
    b.add_op("MEAN", [mask, b.add_const("share/axes", "int32", [1, 2])], [share], {"keep_dims": False})
    probability = b.add_tensor("probability", "float32", (1, k))
    b.add_op("SOFTMAX", [share], [probability], {"beta": sharpness})
    meta = ModelMetadata(
        name="Dominant-colour classifier", version="1", author="tflite-py demo",
        description=f"Which colour ({', '.join(COLOURS)}) covers most of the image.", inputs=(_image_meta(),),
        outputs=(_feature("probability", "Softmax over the share of the image each colour covers.",
                          "TENSOR_AXIS_LABELS"),))
    return b.build(inputs=[image], outputs=[probability], metadata=meta, files=_labels_file())


def _constant(b: ModelBuilder, name: str, values: np.ndarray) -> int:
    """An output that always holds ``values`` (a RESHAPE of a constant: outputs must be computed by an op)."""
    const = b.add_const(f"{name}/const", "float32", values)
    out = b.add_tensor(name, "float32", values.shape)
    shape = [int(d) for d in values.shape]
    b.add_op("RESHAPE", [const, b.add_const(f"{name}/shape", "int32", shape)], [out], {"new_shape": shape})
    return out


def write_demo_models(folder: Path) -> tuple[Path, Path]:
    """Write both models into ``folder`` (created if needed); returns (detector path, classifier path)."""
    folder.mkdir(parents=True, exist_ok=True)
    detector, classifier = folder / DETECTOR_FILE, folder / CLASSIFIER_FILE
    detector.write_bytes(colour_detector())
    classifier.write_bytes(colour_classifier())
    return detector, classifier
