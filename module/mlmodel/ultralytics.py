"""Ultralytics export metadata embedded in a .tflite file (class names, input size, task, end-to-end head, ...).

Ultralytics appends a zip archive to the flatbuffer (the flatbuffer itself is untouched, so the model still loads).
Three forms are seen in real exports:

* ``temp_meta.txt`` (stored, 8.0-8.3): the text of a *Python dict repr* (single quotes, integer keys), so it is
  read with ``ast.literal_eval``, never ``eval`` and never ``json.loads`` (which fails on it).
* ``metadata.json`` (deflated, 8.4.x): real JSON, class-name keys as strings (``"0"``), ``"end2end"``, ``"args"``.
* the same, compact on one line, with ``"args": {"quantize": 8}`` (the LiteRT exporter).

Everything here is pure and total: junk, a missing archive or odd values give ``None`` (or a field of ``None``),
never an exception, because a model must still load when its metadata is not what we expect.
"""

from __future__ import annotations

import ast
import io
import json
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

MEMBER_NAMES: Final = ("metadata.json", "temp_meta.txt")
_MAX_MEMBER_BYTES: Final = 1 << 20  # real files hold a few KB; a larger member is not Ultralytics metadata
_MAX_CLASSES: Final = 100_000


@dataclass(frozen=True, slots=True)
class UltralyticsMetadata:
    """What an Ultralytics export says about itself. ``None``: the file does not say (or says something unusable).

    Attributes:
        names: Class names by class index (index ``i`` at position ``i``; gaps are ``""``).
        imgsz: Input ``(height, width)`` the model was exported for.
        stride: Largest stride of the head (32 for the usual models).
        task: ``detect``, ``segment``, ``pose``, ``obb`` or ``classify`` (other text is kept as given, lower-cased).
        end2end: True when NMS is inside the model (YOLOv10, YOLO26): the output is ``[1, K, 6]``.
        kpt_shape: ``(keypoints, values per keypoint)`` of a pose model.
        version: Ultralytics version that exported the file, e.g. ``"8.3.91"``.
        description: The export's own description.
        channels: Input channels (3 for RGB).
        quantized: True when the export says it was int8-quantised (``int8: true`` or ``quantize: 8`` in ``args``).
        member: Name of the zip member the metadata came from.
    """

    names: tuple[str, ...] | None = None
    imgsz: tuple[int, int] | None = None
    stride: int | None = None
    task: str | None = None
    end2end: bool | None = None
    kpt_shape: tuple[int, int] | None = None
    version: str | None = None
    description: str | None = None
    channels: int | None = None
    quantized: bool | None = None
    member: str = ""


def read_ultralytics_metadata(model: bytes) -> UltralyticsMetadata | None:
    """The Ultralytics metadata appended to a model file, or None when there is none (or it is unreadable).

    Args:
        model: The whole .tflite file.

    Returns:
        The parsed metadata, or None.
    """
    text, member = _member_text(model)
    if text is None:
        return None
    values = parse_metadata_text(text)
    return None if values is None else from_mapping(values, member=member)


def parse_metadata_text(text: str) -> dict[str, Any] | None:
    """JSON or a Python literal dict (``temp_meta.txt``); None for anything else."""
    for parse in (json.loads, ast.literal_eval):
        try:
            value = parse(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
        if isinstance(value, dict):
            return value
    return None


def from_mapping(values: Mapping[str, Any], *, member: str = "") -> UltralyticsMetadata | None:
    """Build the dataclass from the parsed dict; None when it does not look like Ultralytics metadata at all."""
    names = _names(values.get("names"))
    task = _text(values.get("task"))
    if names is None and task is None and _text(values.get("author")) != "Ultralytics":
        return None
    raw_args = values.get("args")
    args: Mapping[str, Any] = raw_args if isinstance(raw_args, Mapping) else {}
    quantized = None
    if "int8" in args or "quantize" in args:
        quantized = args.get("int8") is True or _int(args.get("quantize")) == 8
    return UltralyticsMetadata(
        names=names,
        imgsz=_imgsz(values.get("imgsz")),
        stride=_positive_int(values.get("stride")),
        task=task.lower() if task else None,
        end2end=values.get("end2end") if isinstance(values.get("end2end"), bool) else None,
        kpt_shape=_pair(values.get("kpt_shape")),
        version=_text(values.get("version")),
        description=_text(values.get("description")),
        channels=_positive_int(values.get("channels")),
        quantized=quantized,
        member=member,
    )


def _member_text(model: bytes) -> tuple[str | None, str]:
    try:
        with zipfile.ZipFile(io.BytesIO(model)) as archive:
            members = {info.filename: info for info in archive.infolist() if not info.is_dir()}
            for name in MEMBER_NAMES:
                info = members.get(name)
                if info is None or info.file_size > _MAX_MEMBER_BYTES:
                    continue
                data = archive.read(info)
                return data.decode("utf-8-sig", errors="replace"), name
    except Exception:  # noqa: BLE001 - zipfile raises many types on junk (BadZipFile, zlib.error, EOFError, ...)
        return None, ""
    return None, ""


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def _positive_int(value: Any) -> int | None:
    number = _int(value)
    if number is None and isinstance(value, (list, tuple)) and value:
        number = max((n for n in (_int(v) for v in value) if n is not None), default=None)  # stride as a list
    return number if number is not None and number > 0 else None


def _pair(value: Any) -> tuple[int, int] | None:
    if isinstance(value, (list, tuple)) and len(value) == 2:
        first, second = _int(value[0]), _int(value[1])
        if first is not None and second is not None and first > 0 and second > 0:
            return (first, second)
    return None


def _imgsz(value: Any) -> tuple[int, int] | None:
    single = _positive_int(value) if not isinstance(value, (list, tuple)) else None
    if single is not None:
        return (single, single)
    if isinstance(value, (list, tuple)) and len(value) == 1:
        return _imgsz(value[0])
    return _pair(value)


def _names(value: Any) -> tuple[str, ...] | None:
    """Names from a list, or from a mapping of index (int or digit string) to name; None when unusable."""
    if isinstance(value, (list, tuple)):
        names = [str(v) if v is not None else "" for v in value]
        return tuple(names) if names and len(names) <= _MAX_CLASSES else None
    if not isinstance(value, Mapping) or not value:
        return None
    indexed: dict[int, str] = {}
    for key, name in value.items():
        index = _int(key)
        if index is None or index < 0 or index >= _MAX_CLASSES:
            return None
        indexed[index] = str(name) if name is not None else ""
    table = [""] * (max(indexed) + 1)
    for index, name in indexed.items():
        table[index] = name
    return tuple(table)
