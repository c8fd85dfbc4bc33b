"""Read TFLite Model Metadata (the ``TFLITE_METADATA`` buffer) and the files embedded in a .tflite model.

The metadata is a second flatbuffer (file identifier ``M001``) described by
``tensorflow_lite_support/metadata/metadata_schema.fbs`` in tensorflow/tflite-support. It is stored in a model
buffer that ``Model.metadata[i]`` names ``TFLITE_METADATA``. Associated files (label maps and the like) are
appended to the flatbuffer as an uncompressed zip archive, so the model bytes are also a zip file.

The model flatbuffer is read with the ``tflite`` package; the metadata flatbuffer with the small bounds-checked
reader below (the slot numbers follow the order of the fields in ``metadata_schema.fbs``; union fields take two
slots, the type first). Every failure on malformed input becomes a ``ValueError``.
"""

from __future__ import annotations

import io
import struct
import types
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import tflite

METADATA_NAME = "TFLITE_METADATA"
_FILE_IDENTIFIER = b"M001"
_MAX_FILES_BYTES = 256 * 1024 * 1024

ASSOCIATED_FILE_TYPES = (
    "UNKNOWN", "DESCRIPTIONS", "TENSOR_AXIS_LABELS", "TENSOR_VALUE_LABELS", "TENSOR_AXIS_SCORE_CALIBRATION",
    "VOCABULARY", "SCANN_INDEX_FILE",
)
# ContentProperties union (0 = NONE); AudioProperties (4) and SCANN_INDEX_FILE (6) come from newer schema versions.
CONTENT_TYPES = {1: "feature", 2: "image", 3: "bounding_box", 4: "audio"}
COLOR_SPACES = ("UNKNOWN", "RGB", "GRAYSCALE")
BOX_TYPES = ("UNKNOWN", "BOUNDARIES", "UPPER_LEFT", "CENTER")
COORDINATE_TYPES = ("RATIO", "PIXEL")
LABEL_FILE_TYPES = ("TENSOR_AXIS_LABELS", "TENSOR_VALUE_LABELS")
_NORMALIZATION_OPTIONS = 1  # ProcessUnitOptions union member


@dataclass(frozen=True, slots=True)
class AssociatedFile:
    """A file the metadata refers to (its bytes, if embedded, are in ``ModelMetadata.files``)."""

    name: str
    description: str = ""
    type: str = "UNKNOWN"


@dataclass(frozen=True, slots=True)
class TensorMetadata:
    """Metadata of one input or output tensor. ``None`` means the model does not say."""

    name: str
    description: str = ""
    content: str | None = None
    color_space: str | None = None
    box_index: tuple[int, ...] | None = None
    box_type: str | None = None
    box_coordinate_type: str | None = None
    normalization_mean: tuple[float, ...] | None = None
    normalization_std: tuple[float, ...] | None = None
    stats_min: tuple[float, ...] | None = None
    stats_max: tuple[float, ...] | None = None
    associated_files: tuple[AssociatedFile, ...] = ()


@dataclass(frozen=True, slots=True)
class ModelMetadata:
    """The parsed ``TFLITE_METADATA`` of a model plus the files embedded in it."""

    name: str = ""
    description: str = ""
    version: str = ""
    author: str = ""
    license: str = ""
    inputs: tuple[TensorMetadata, ...] = ()
    outputs: tuple[TensorMetadata, ...] = ()
    associated_files: tuple[AssociatedFile, ...] = ()
    files: Mapping[str, bytes] = field(default_factory=dict, repr=False, hash=False)


class _Table:
    """A bounds-checked view of one flatbuffer table (raises ``ValueError`` when an offset leaves the buffer)."""

    __slots__ = ("_buf", "_pos", "_vtable", "_vtable_len")

    def __init__(self, buf: bytes, pos: int) -> None:
        self._buf = buf
        self._pos = pos
        self._vtable = pos - self._get("<i", pos)
        self._vtable_len = self._get("<H", self._vtable)
        self._check(self._vtable, self._vtable_len)

    def _check(self, pos: int, size: int) -> None:
        if pos < 0 or size < 0 or pos + size > len(self._buf):
            raise ValueError(f"offset {pos} (+{size}) is outside the {len(self._buf)}-byte flatbuffer")

    def _get(self, fmt: str, pos: int) -> int:
        """An integer scalar (every field this reader follows is one; floats come through ``numbers``)."""
        self._check(pos, struct.calcsize(fmt))
        return int(struct.unpack_from(fmt, self._buf, pos)[0])

    def _field(self, slot: int) -> int:
        """Absolute position of field ``slot``, or 0 when it is absent."""
        entry = 4 + 2 * slot
        if entry + 2 > self._vtable_len:
            return 0
        offset = (self._get("<H", self._vtable + entry))
        return self._pos + offset if offset else 0

    def _deref(self, pos: int) -> int:
        return pos + (self._get("<I", pos))

    def scalar(self, slot: int, fmt: str, default: int = 0) -> int:
        pos = self._field(slot)
        return (self._get(fmt, pos)) if pos else default

    def bytes(self, slot: int) -> bytes:
        pos = self._field(slot)
        if not pos:
            return b""
        start, length = self._vector(pos, 1)
        return self._buf[start : start + length]

    def string(self, slot: int) -> str:
        return self.bytes(slot).decode("utf-8", errors="replace")

    def table(self, slot: int) -> _Table | None:
        pos = self._field(slot)
        return _Table(self._buf, self._deref(pos)) if pos else None

    def _vector(self, pos: int, elem_size: int) -> tuple[int, int]:
        vec = self._deref(pos)
        length = (self._get("<I", vec))
        self._check(vec + 4, length * elem_size)
        return vec + 4, length

    def tables(self, slot: int) -> list[_Table]:
        pos = self._field(slot)
        if not pos:
            return []
        start, length = self._vector(pos, 4)
        return [_Table(self._buf, self._deref(start + 4 * i)) for i in range(length)]

    def numbers(self, slot: int, fmt: str) -> tuple[int | float, ...] | None:
        pos = self._field(slot)
        if not pos:
            return None
        size = struct.calcsize(fmt)
        start, length = self._vector(pos, size)
        return struct.unpack_from(f"<{length}{fmt}", self._buf, start)


def _enum(names: tuple[str, ...], value: int) -> str:
    return names[value] if 0 <= value < len(names) else f"UNKNOWN_{value}"


def _files(tables: list[_Table]) -> tuple[AssociatedFile, ...]:
    # AssociatedFile: name 0, description 1, type 2 (byte), locale 3.
    return tuple(
        AssociatedFile(t.string(0), t.string(1), _enum(ASSOCIATED_FILE_TYPES, t.scalar(2, "<b"))) for t in tables
    )


def _floats(values: tuple[int | float, ...] | None) -> tuple[float, ...] | None:
    return None if values is None else tuple(float(v) for v in values)


def _tensor(t: _Table) -> TensorMetadata:
    # TensorMetadata: name 0, description 1, dimension_names 2, content 3, process_units 4, stats 5,
    # associated_files 6.
    fields: dict[str, Any] = {"name": t.string(0), "description": t.string(1), "associated_files": _files(t.tables(6))}
    content = t.table(3)
    if content is not None:
        # Content: content_properties_type 0 (ubyte), content_properties 1, range 2.
        kind = content.scalar(0, "<B")
        fields["content"] = CONTENT_TYPES.get(kind)
        props = content.table(1)
        if props is not None and kind == 2:  # ImageProperties: color_space 0 (byte), default_size 1.
            fields["color_space"] = _enum(COLOR_SPACES, props.scalar(0, "<b"))
        elif props is not None and kind == 3:  # BoundingBoxProperties: index 0 [uint], type 1, coordinate_type 2.
            fields["box_index"] = props.numbers(0, "I")
            fields["box_type"] = _enum(BOX_TYPES, props.scalar(1, "<b"))
            fields["box_coordinate_type"] = _enum(COORDINATE_TYPES, props.scalar(2, "<b"))
    for unit in t.tables(4):  # ProcessUnit: options_type 0 (ubyte), options 1. The first normalization wins.
        options = unit.table(1)
        if unit.scalar(0, "<B") == _NORMALIZATION_OPTIONS and options and "normalization_mean" not in fields:
            fields["normalization_mean"] = _floats(options.numbers(0, "f"))  # NormalizationOptions: mean 0, std 1.
            fields["normalization_std"] = _floats(options.numbers(1, "f"))
    stats = t.table(5)
    if stats is not None:  # Stats: max 0, min 1.
        fields["stats_max"] = _floats(stats.numbers(0, "f"))
        fields["stats_min"] = _floats(stats.numbers(1, "f"))
    return TensorMetadata(**fields)


def parse_metadata_buffer(data: bytes, files: Mapping[str, bytes] | None = None) -> ModelMetadata:
    """Parse a ``ModelMetadata`` flatbuffer (the contents of the ``TFLITE_METADATA`` buffer).

    Args:
        data: The metadata flatbuffer, starting with its root offset and the ``M001`` identifier.
        files: The embedded files to attach to the result.

    Returns:
        The parsed metadata.

    Raises:
        ValueError: The buffer is not a valid ``M001`` flatbuffer.
    """
    data = bytes(data)
    if len(data) < 8 or data[4:8] != _FILE_IDENTIFIER:
        raise ValueError(f"TFLite metadata buffer does not carry the {_FILE_IDENTIFIER.decode()} identifier")
    try:
        root = _Table(data, struct.unpack_from("<I", data, 0)[0])
        # ModelMetadata: name 0, description 1, version 2, subgraph_metadata 3, author 4, license 5,
        # associated_files 6, min_parser_version 7.
        subgraphs = root.tables(3)
        inputs: tuple[TensorMetadata, ...] = ()
        outputs: tuple[TensorMetadata, ...] = ()
        assoc = _files(root.tables(6))
        if subgraphs:
            # SubGraphMetadata: name 0, description 1, input_tensor_metadata 2, output_tensor_metadata 3,
            # associated_files 4, input_process_units 5, output_process_units 6.
            inputs = tuple(_tensor(t) for t in subgraphs[0].tables(2))
            outputs = tuple(_tensor(t) for t in subgraphs[0].tables(3))
            assoc += _files(subgraphs[0].tables(4))
        return ModelMetadata(
            name=root.string(0), description=root.string(1), version=root.string(2), author=root.string(4),
            license=root.string(5), inputs=inputs, outputs=outputs, associated_files=assoc,
            files=types.MappingProxyType(dict(files or {})),
        )
    except (struct.error, IndexError, OverflowError, MemoryError, RecursionError) as exc:
        raise ValueError(f"TFLite metadata buffer is corrupt: {exc}") from exc


def _metadata_buffer(model: bytes) -> bytes | None:
    """Return the bytes of the ``TFLITE_METADATA`` buffer, or None if the model has no such entry."""
    if len(model) < 8 or model[4:8] != b"TFL3":
        raise ValueError("not a TFLite model: the TFL3 file identifier is missing")
    try:
        root = tflite.Model.GetRootAs(model, 0)
        count = root.MetadataLength()
        if count * 4 > len(model):
            raise ValueError(f"model declares {count} metadata entries, more than fit in {len(model)} bytes")
        for i in range(count):
            entry = _Table(model, root.Metadata(i)._tab.Pos)  # Metadata: name 0, buffer 1 (uint).
            if entry.string(0) != METADATA_NAME:
                continue
            index = entry.scalar(1, "<I")
            if not 0 <= index < root.BuffersLength():
                raise ValueError(f"metadata entry points at buffer {index}, which does not exist")
            buffer = root.Buffers(index)
            offset, size = buffer.Offset(), buffer.Size()
            if offset > 1:  # Models over 2 GB keep buffers outside the flatbuffer, at an absolute offset.
                if offset + size > len(model):
                    raise ValueError("metadata buffer lies beyond the end of the model")
                return model[offset : offset + size]
            data = _Table(model, buffer._tab.Pos).bytes(0)  # Buffer: data 0 [ubyte], offset 1, size 2.
            if not data:
                raise ValueError("metadata buffer is empty")
            return data
        return None
    except (struct.error, IndexError, OverflowError, TypeError, AttributeError, MemoryError) as exc:
        raise ValueError(f"TFLite model flatbuffer is corrupt: {exc}") from exc


def read_embedded_files(model: bytes) -> dict[str, bytes]:
    """Return the members of the zip archive appended to a model (empty when there is none).

    Raises:
        ValueError: An archive is present but its members cannot be read, or they are implausibly large.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(model))
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError):
        return {}
    try:
        with archive:
            infos = [info for info in archive.infolist() if not info.is_dir()]
            if sum(info.file_size for info in infos) > _MAX_FILES_BYTES:
                raise ValueError(f"files embedded in the model exceed {_MAX_FILES_BYTES} bytes")
            return {info.filename: archive.read(info) for info in infos}
    except ValueError:
        raise
    except Exception as exc:  # zipfile raises many types (zlib.error, RuntimeError, EOFError, ...).
        raise ValueError(f"zip archive embedded in the model is corrupt: {exc}") from exc


def read_model_metadata(model: bytes) -> ModelMetadata | None:
    """Read the TFLite Model Metadata and the embedded files of a .tflite model.

    Args:
        model: The whole model file.

    Returns:
        The metadata, or None when the model has no ``TFLITE_METADATA`` entry.

    Raises:
        ValueError: The model or its metadata is corrupt; the message says what is wrong.
    """
    model = bytes(model)
    data = _metadata_buffer(model)
    if data is None:
        return None
    return parse_metadata_buffer(data, read_embedded_files(model))


def label_file_for(meta: ModelMetadata, output_index: int) -> tuple[str, str] | None:
    """Find the label file of an output tensor.

    Args:
        meta: Metadata from :func:`read_model_metadata`.
        output_index: Position of the output in the subgraph's outputs.

    Returns:
        ``(file name, label type)`` of the first ``TENSOR_AXIS_LABELS`` or ``TENSOR_VALUE_LABELS`` file attached
        to that output whose bytes are embedded in the model, or None.
    """
    if not 0 <= output_index < len(meta.outputs):
        return None
    for assoc in meta.outputs[output_index].associated_files:
        if assoc.type in LABEL_FILE_TYPES and assoc.name in meta.files:
            return assoc.name, assoc.type
    return None
