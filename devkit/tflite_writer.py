"""A small writer of TFLite flatbuffers: tensors, builtin operators, one subgraph, metadata and embedded files.

It exists to build tiny, valid models for tests and demos without TensorFlow::

    b = ModelBuilder(description="adds two vectors")
    a = b.add_tensor("a", "float32", (1, 4))
    c = b.add_tensor("b", "float32", (1, 4))
    s = b.add_tensor("sum", "float32", (1, 4))
    b.add_op("ADD", [a, c], [s])
    model = b.build(inputs=[a, c], outputs=[s])

Operators are builtin ops named as in ``tflite.BuiltinOperator`` (``"ADD"``, ``"RESHAPE"``, ``"MEAN"``...). Their
options are given as a dict of snake_case field names of the options table (``{"new_shape": [1, 4]}``); the table
type is the CamelCase op name plus ``Options`` unless listed in ``_OPTIONS_TYPES``.

Metadata is given as the :class:`module.mlmodel.tflite_metadata.ModelMetadata` the reader returns, written as an
``M001`` flatbuffer into a buffer named ``TFLITE_METADATA``. Files are appended as an uncompressed zip archive, as
tflite-support's metadata populator does; the flatbuffer is unaffected, so the model still loads.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import flatbuffers
import numpy as np
import tflite

from module.mlmodel.tflite_metadata import (
    ASSOCIATED_FILE_TYPES,
    BOX_TYPES,
    COLOR_SPACES,
    CONTENT_TYPES,
    COORDINATE_TYPES,
    METADATA_NAME,
    AssociatedFile,
    ModelMetadata,
    TensorMetadata,
)

# name -> (tflite.TensorType value, numpy dtype)
DTYPES: dict[str, tuple[int, Any]] = {
    "float32": (tflite.TensorType.FLOAT32, np.float32),
    "float16": (tflite.TensorType.FLOAT16, np.float16),
    "float64": (tflite.TensorType.FLOAT64, np.float64),
    "int8": (tflite.TensorType.INT8, np.int8),
    "uint8": (tflite.TensorType.UINT8, np.uint8),
    "int16": (tflite.TensorType.INT16, np.int16),
    "uint16": (tflite.TensorType.UINT16, np.uint16),
    "int32": (tflite.TensorType.INT32, np.int32),
    "uint32": (tflite.TensorType.UINT32, np.uint32),
    "int64": (tflite.TensorType.INT64, np.int64),
    "uint64": (tflite.TensorType.UINT64, np.uint64),
    "bool": (tflite.TensorType.BOOL, np.bool_),
}
_OPTIONS_TYPES = {"MEAN": "ReducerOptions", "SUM": "ReducerOptions", "REDUCE_MAX": "ReducerOptions",
                  "REDUCE_MIN": "ReducerOptions", "REDUCE_PROD": "ReducerOptions"}
_BUFFER_ALIGNMENT = 16


@dataclass(frozen=True, slots=True)
class _Tensor:
    name: str
    dtype: str
    shape: tuple[int, ...]
    shape_signature: tuple[int, ...] | None
    data: bytes | None
    scale: tuple[float, ...] | None
    zero_point: tuple[int, ...] | None


@dataclass(frozen=True, slots=True)
class _Op:
    code: int
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options_type: str | None
    options: Mapping[str, Any]


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:].lower() for part in name.split("_"))


def _vector(b: flatbuffers.Builder, kind: str, values: Sequence[Any]) -> int:
    """Write a vector of scalars (``kind`` names a ``Builder.Prepend*`` method) or of offsets (``"UOffset"``)."""
    size = 4 if kind == "UOffset" else flatbuffers.number_types.__dict__[f"{kind}Flags"].bytewidth
    b.StartVector(size, len(values), size)
    prepend = b.PrependUOffsetTRelative if kind == "UOffset" else getattr(b, f"Prepend{kind}")
    for value in reversed(values):
        prepend(value)
    return b.EndVector()


def _bytes_vector(b: flatbuffers.Builder, data: bytes, alignment: int = _BUFFER_ALIGNMENT) -> int:
    b.StartVector(1, len(data), alignment)
    b.head -= len(data)
    b.Bytes[b.head : b.head + len(data)] = data
    return b.EndVector()


def _table(b: flatbuffers.Builder, slots: int, fields: Mapping[int, tuple[str, Any]]) -> int:
    """Write a table; ``fields`` maps slot -> (``"UOffset"`` or a scalar kind such as ``"Int8"``, value)."""
    b.StartObject(slots)
    for slot, (kind, value) in fields.items():
        if value is None:
            continue
        if kind == "UOffset":
            b.PrependUOffsetTRelativeSlot(slot, value, 0)
        else:
            getattr(b, f"Prepend{kind}Slot")(slot, value, 0)
    return b.EndObject()


def _enum_index(names: Iterable[str], value: str | None, what: str) -> int | None:
    if value is None:
        return None
    names = list(names)
    if value not in names:
        raise ValueError(f"unknown {what} {value!r}; expected one of {names}")
    return names.index(value)


def _write_files(b: flatbuffers.Builder, files: Sequence[AssociatedFile]) -> int | None:
    if not files:
        return None
    offsets = []
    for f in files:
        name, desc = b.CreateString(f.name), b.CreateString(f.description)
        kind = _enum_index(ASSOCIATED_FILE_TYPES, f.type, "associated file type")
        offsets.append(_table(b, 4, {0: ("UOffset", name), 1: ("UOffset", desc), 2: ("Int8", kind)}))
    return _vector(b, "UOffset", offsets)


def _floats(b: flatbuffers.Builder, values: Sequence[float] | None) -> int | None:
    return None if values is None else _vector(b, "Float32", [float(v) for v in values])


def _write_tensor_metadata(b: flatbuffers.Builder, t: TensorMetadata) -> int:
    content = None
    if t.content is not None:
        kind = {v: k for k, v in CONTENT_TYPES.items()}.get(t.content)
        if kind is None:
            raise ValueError(f"unknown content {t.content!r}; expected one of {list(CONTENT_TYPES.values())}")
        props: dict[int, tuple[str, Any]] = {}
        if t.content == "image":
            props = {0: ("Int8", _enum_index(COLOR_SPACES, t.color_space, "color space"))}
        elif t.content == "bounding_box":
            index = None if t.box_index is None else _vector(b, "Uint32", list(t.box_index))
            props = {0: ("UOffset", index), 1: ("Int8", _enum_index(BOX_TYPES, t.box_type, "box type")),
                     2: ("Int8", _enum_index(COORDINATE_TYPES, t.box_coordinate_type, "coordinate type"))}
        props_table = _table(b, 3, props)
        content = _table(b, 3, {0: ("Uint8", kind), 1: ("UOffset", props_table)})
    units = None
    if t.normalization_mean is not None or t.normalization_std is not None:
        mean, std = _floats(b, t.normalization_mean), _floats(b, t.normalization_std)
        norm = _table(b, 2, {0: ("UOffset", mean), 1: ("UOffset", std)})
        units = _vector(b, "UOffset", [_table(b, 2, {0: ("Uint8", 1), 1: ("UOffset", norm)})])
    stats = None
    if t.stats_min is not None or t.stats_max is not None:
        smax, smin = _floats(b, t.stats_max), _floats(b, t.stats_min)
        stats = _table(b, 2, {0: ("UOffset", smax), 1: ("UOffset", smin)})
    files = _write_files(b, t.associated_files)
    name, desc = b.CreateString(t.name), b.CreateString(t.description)
    return _table(b, 7, {0: ("UOffset", name), 1: ("UOffset", desc), 3: ("UOffset", content),
                         4: ("UOffset", units), 5: ("UOffset", stats), 6: ("UOffset", files)})


def write_metadata(meta: ModelMetadata) -> bytes:
    """Serialize metadata as an ``M001`` ``ModelMetadata`` flatbuffer (``meta.files`` is not written here).

    All associated files of ``meta`` are written at model level; tensor files stay on their tensors.
    """
    b = flatbuffers.Builder(1024)
    inputs = _vector(b, "UOffset", [_write_tensor_metadata(b, t) for t in meta.inputs])
    outputs = _vector(b, "UOffset", [_write_tensor_metadata(b, t) for t in meta.outputs])
    subgraph = _table(b, 7, {2: ("UOffset", inputs), 3: ("UOffset", outputs)})
    subgraphs = _vector(b, "UOffset", [subgraph])
    files = _write_files(b, meta.associated_files)
    strings = {slot: b.CreateString(value) for slot, value in
               ((0, meta.name), (1, meta.description), (2, meta.version), (4, meta.author), (5, meta.license))}
    fields: dict[int, tuple[str, Any]] = {slot: ("UOffset", off) for slot, off in strings.items()}
    fields.update({3: ("UOffset", subgraphs), 6: ("UOffset", files), 7: ("UOffset", b.CreateString("1.0.0"))})
    b.Finish(_table(b, 8, dict(sorted(fields.items()))), file_identifier=b"M001")
    return bytes(b.Output())


def embed_files(model: bytes, files: Mapping[str, bytes]) -> bytes:
    """Append ``files`` to a model as an uncompressed zip archive (the model stays loadable)."""
    if not files:
        return bytes(model)
    out = io.BytesIO(bytes(model))
    with zipfile.ZipFile(out, "a", compression=zipfile.ZIP_STORED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return out.getvalue()


class ModelBuilder:
    """Collects tensors and operators of one subgraph and serializes them as a TFLite model."""

    def __init__(self, description: str = "built by devkit.tflite_writer") -> None:
        self.description = description
        self._tensors: list[_Tensor] = []
        self._ops: list[_Op] = []

    def add_tensor(
        self, name: str, dtype: str, shape: Sequence[int], *, shape_signature: Sequence[int] | None = None,
        data: Any = None, scale: float | Sequence[float] | None = None,
        zero_point: int | Sequence[int] | None = None,
    ) -> int:
        """Add a tensor and return its index.

        Args:
            name: Tensor name.
            dtype: A key of :data:`DTYPES` (``"float32"``, ``"uint8"``...).
            shape: Static shape (use 1 where ``shape_signature`` has -1).
            shape_signature: Shape with -1 for dynamic dimensions, if any.
            data: Constant contents (array-like, converted to ``dtype``, or raw bytes); None for activations.
            scale: Quantization scale(s).
            zero_point: Quantization zero point(s); defaults to 0 when ``scale`` is given.
        """
        if dtype not in DTYPES:
            raise ValueError(f"unknown dtype {dtype!r}; expected one of {sorted(DTYPES)}")
        raw = None
        if data is not None:
            raw = bytes(data) if isinstance(data, bytes) else np.asarray(data, DTYPES[dtype][1]).tobytes()
        scales = None if scale is None else tuple(float(s) for s in np.atleast_1d(scale))
        zps = None
        if scales is not None:
            zps = tuple(int(z) for z in np.atleast_1d(0 if zero_point is None else zero_point))
        sig = None if shape_signature is None else tuple(int(d) for d in shape_signature)
        self._tensors.append(_Tensor(name, dtype, tuple(int(d) for d in shape), sig, raw, scales, zps))
        return len(self._tensors) - 1

    def add_const(self, name: str, dtype: str, value: Any, **quant: Any) -> int:
        """Add a constant tensor whose shape is that of ``value``."""
        array = np.asarray(value, DTYPES[dtype][1])
        return self.add_tensor(name, dtype, array.shape, data=array, **quant)

    def add_op(
        self, op: str, inputs: Sequence[int], outputs: Sequence[int], options: Mapping[str, Any] | None = None,
        *, options_type: str | None = None,
    ) -> None:
        """Add a builtin operator.

        Args:
            op: Builtin operator name, as in ``tflite.BuiltinOperator`` (``"ADD"``, ``"RESHAPE"``...).
            inputs: Input tensor indices (-1 for an omitted optional input).
            outputs: Output tensor indices.
            options: Fields of the builtin options table, snake_case; ints/floats/bools, lists of ints, or
                names of activation functions / dtypes for enum fields.
            options_type: Name of the options table when it is not derived from ``op``.
        """
        code = getattr(tflite.BuiltinOperator, op.upper(), None)
        if code is None:
            raise ValueError(f"unknown builtin operator {op!r}")
        if options_type is None:
            options_type = _OPTIONS_TYPES.get(op.upper(), _camel(op) + "Options")
            if not hasattr(tflite.BuiltinOptions, options_type):
                options_type = None
        if options and options_type is None:
            raise ValueError(f"options given for {op}, but no options table is known for it")
        self._ops.append(_Op(code, tuple(inputs), tuple(outputs), options_type, dict(options or {})))

    def build(
        self, inputs: Sequence[int], outputs: Sequence[int], metadata: ModelMetadata | None = None,
        files: Mapping[str, bytes] | None = None,
    ) -> bytes:
        """Serialize the model.

        Args:
            inputs: Subgraph input tensor indices, in order.
            outputs: Subgraph output tensor indices, in order.
            metadata: TFLite metadata to store under ``TFLITE_METADATA``.
            files: Files to embed as a zip; defaults to ``metadata.files`` when metadata is given.

        Returns:
            The model bytes (``TFL3`` flatbuffer, optionally followed by a zip archive).
        """
        b = flatbuffers.Builder(1024)
        buffers: list[bytes | None] = [None]  # Buffer 0 is the empty sentinel.
        tensors = [self._write_tensor(b, t, buffers) for t in self._tensors]
        codes = sorted({op.code for op in self._ops})
        ops = [self._write_op(b, op, codes.index(op.code)) for op in self._ops]
        sub_fields = {0: ("UOffset", _vector(b, "UOffset", tensors)), 1: ("UOffset", _vector(b, "Int32", inputs)),
                      2: ("UOffset", _vector(b, "Int32", outputs)), 3: ("UOffset", _vector(b, "UOffset", ops)),
                      4: ("UOffset", b.CreateString("main"))}
        subgraphs = _vector(b, "UOffset", [_table(b, 5, sub_fields)])
        op_codes = []
        for code in codes:  # OperatorCode: deprecated_builtin_code 0 (int8), custom 1, version 2, builtin_code 3.
            op_codes.append(_table(b, 4, {0: ("Int8", min(code, 127)), 2: ("Int32", 1), 3: ("Int32", code)}))
        entries = []
        if metadata is not None:
            buffers.append(write_metadata(metadata))
            entries.append(_table(b, 2, {0: ("UOffset", b.CreateString(METADATA_NAME)),
                                         1: ("Uint32", len(buffers) - 1)}))
        buffer_tables = []
        for data in buffers:
            vec = None if data is None else _bytes_vector(b, data)
            buffer_tables.append(_table(b, 1, {0: ("UOffset", vec)}))
        fields = {0: ("Uint32", 3), 1: ("UOffset", _vector(b, "UOffset", op_codes)), 2: ("UOffset", subgraphs),
                  3: ("UOffset", b.CreateString(self.description)),
                  4: ("UOffset", _vector(b, "UOffset", buffer_tables)),
                  6: ("UOffset", _vector(b, "UOffset", entries) if entries else None)}
        b.Finish(_table(b, 8, fields), file_identifier=b"TFL3")
        if files is None and metadata is not None:
            files = metadata.files
        return embed_files(bytes(b.Output()), files or {})

    @staticmethod
    def _write_tensor(b: flatbuffers.Builder, t: _Tensor, buffers: list[bytes | None]) -> int:
        buffer_index = 0
        if t.data is not None:
            buffers.append(t.data)
            buffer_index = len(buffers) - 1
        quant = None
        if t.scale is not None and t.zero_point is not None:
            quant = _table(b, 7, {2: ("UOffset", _vector(b, "Float32", t.scale)),
                                  3: ("UOffset", _vector(b, "Int64", t.zero_point))})
        sig = None if t.shape_signature is None else _vector(b, "Int32", t.shape_signature)
        # Tensor: shape 0, type 1, buffer 2, name 3, quantization 4, is_variable 5, sparsity 6, shape_signature 7.
        return _table(b, 8, {0: ("UOffset", _vector(b, "Int32", t.shape)), 1: ("Int8", DTYPES[t.dtype][0]),
                             2: ("Uint32", buffer_index), 3: ("UOffset", b.CreateString(t.name)),
                             4: ("UOffset", quant), 7: ("UOffset", sig)})

    @staticmethod
    def _write_op(b: flatbuffers.Builder, op: _Op, opcode_index: int) -> int:
        options = None
        if op.options_type is not None:
            prefix = op.options_type
            vectors = {k: _vector(b, "Int32", [int(x) for x in v]) for k, v in op.options.items()
                       if isinstance(v, (list, tuple))}
            getattr(tflite, f"{prefix}Start")(b)
            for key, value in op.options.items():
                value = vectors.get(key, _enum_value(value))
                getattr(tflite, f"{prefix}Add{_camel(key)}")(b, value)
            options = getattr(tflite, f"{prefix}End")(b)
        ins, outs = _vector(b, "Int32", op.inputs), _vector(b, "Int32", op.outputs)
        # Operator: opcode_index 0, inputs 1, outputs 2, builtin_options_type 3, builtin_options 4.
        options_kind = None if op.options_type is None else getattr(tflite.BuiltinOptions, op.options_type)
        return _table(b, 5, {0: ("Uint32", opcode_index), 1: ("UOffset", ins), 2: ("UOffset", outs),
                             3: ("Uint8", options_kind), 4: ("UOffset", options)})


def _enum_value(value: Any) -> Any:
    """Map an activation function or dtype name to its enum value; pass other values through."""
    if isinstance(value, str):
        if hasattr(tflite.ActivationFunctionType, value.upper()):
            return getattr(tflite.ActivationFunctionType, value.upper())
        if value in DTYPES:
            return DTYPES[value][0]
        raise ValueError(f"cannot encode option value {value!r}")
    return value
