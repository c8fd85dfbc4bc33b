"""Label file formats beyond "one label per line": the formats training tools actually write next to a model.

* Teachable Machine and many tutorials: ``0 Cats`` / ``1 Dogs`` (also ``0  cat`` with two spaces, CRLF). When
  *every* label line starts with its own index, the prefix is dropped (:func:`strip_index_prefixes`).
* TF Object Detection API ``label_map.pbtxt``: ``item { id: 1 name: 'x' display_name: 'X' }``. The API reserves
  id 0 for the background, and a ``TFLite_Detection_PostProcess`` op emits ``id - 1``, so with 1-based ids label
  ``i`` is the item with id ``i + 1``; a map that uses id 0 is taken as 0-based.
* Ultralytics / Roboflow ``data.yaml``: the ``names`` key, as a flow list (``names: ['a', 'b']``), a block list
  (``- a``) or a mapping (``0: a``). Only that key is read, with a small parser (no YAML dependency).

The format is told from the content, not the file name (the TF2 SSD in the test data embeds a plain list named
``labels.pbtxt``). Pure functions; nothing raises on odd input: an unrecognised text gives None.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from typing import Final

_INDEX_PREFIX: Final = re.compile(r"^(\d+)(?:[ \t]+|[ \t]*[:.)][ \t]*)(\S.*)$")
_PBTXT_ITEM: Final = re.compile(r"\bitem\s*\{(.*?)\}", re.DOTALL)
_PBTXT_FIELD: Final = re.compile(r"\b(id|name|display_name)\s*:\s*(\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|-?\d+)")
_YAML_NAMES: Final = re.compile(r"^names\s*:\s*(.*)$")
_YAML_MAP_ENTRY: Final = re.compile(r"^\s+(['\"]?)(\d+)\1\s*:\s*(.*)$")
_YAML_LIST_ENTRY: Final = re.compile(r"^\s*-\s+(.*)$")
_MAX_CLASSES: Final = 100_000


def strip_index_prefixes(labels: Sequence[str]) -> tuple[str, ...]:
    """Drop ``"<i> "`` from every label when each non-blank label ``i`` starts with its own index ``i``.

    ``("0 Cats", "1 Dogs")`` -> ``("Cats", "Dogs")``; ``("0 Mask", "2 NoMask")`` and ``("1 cup", "glass")`` are
    left alone (not every line carries its own index, so the digits are part of the names).
    """
    if not labels:
        return tuple(labels)
    stripped: list[str] = []
    for position, label in enumerate(labels):
        if not label:
            stripped.append(label)
            continue
        match = _INDEX_PREFIX.match(label)
        if match is None or int(match.group(1)) != position:
            return tuple(labels)
        stripped.append(match.group(2).strip())
    return tuple(stripped) if any(stripped) else tuple(labels)


def parse_structured(text: str) -> tuple[str, ...] | None:
    """Labels from a ``label_map.pbtxt`` or a ``data.yaml``; None when ``text`` is neither."""
    if _PBTXT_ITEM.search(text):
        return parse_pbtxt(text)
    if any(_YAML_NAMES.match(line) for line in text.splitlines()):
        return parse_yaml_names(text)
    return None


def parse_pbtxt(text: str) -> tuple[str, ...] | None:
    """Labels of a TF OD API label map, by class index (see the module docstring for the id convention)."""
    entries: dict[int, str] = {}
    for item in _PBTXT_ITEM.finditer(text):
        fields: dict[str, str] = {}
        for key, value in _PBTXT_FIELD.findall(item.group(1)):
            fields.setdefault(key, value)
        if "id" not in fields:
            continue
        name = _unquote(fields.get("display_name") or fields.get("name") or "")
        entries[int(fields["id"])] = name
    if not entries or min(entries) < 0 or max(entries) >= _MAX_CLASSES:
        return None
    offset = 0 if 0 in entries else 1
    return _table({index - offset: name for index, name in entries.items()})


def parse_yaml_names(text: str) -> tuple[str, ...] | None:
    """The ``names`` of an Ultralytics / Roboflow ``data.yaml`` (flow list, block list or index mapping)."""
    lines = text.splitlines()
    for at, line in enumerate(lines):
        match = _YAML_NAMES.match(line)
        if match is None:
            continue
        inline = _drop_comment(match.group(1)).strip()
        if inline:
            return _flow(inline)
        return _block(lines[at + 1 :])
    return None


def _flow(value: str) -> tuple[str, ...] | None:
    """``['a', 'b']`` or ``{0: a, 1: b}`` on one line."""
    try:
        parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        if value.startswith("[") and value.endswith("]"):  # unquoted YAML flow list: [a, b c]
            return tuple(_unquote(part.strip()) for part in value[1:-1].split(",") if part.strip()) or None
        if value.startswith("{") and value.endswith("}"):
            pairs = [part.split(":", 1) for part in value[1:-1].split(",") if ":" in part]
            try:
                return _table({int(k.strip().strip("'\"")): _unquote(v.strip()) for k, v in pairs})
            except ValueError:
                return None
        return None
    if isinstance(parsed, (list, tuple)):
        return tuple(str(v) for v in parsed) or None
    if isinstance(parsed, dict):
        try:
            return _table({int(k): str(v) for k, v in parsed.items()})
        except (TypeError, ValueError):
            return None
    return None


def _block(lines: list[str]) -> tuple[str, ...] | None:
    """Indented ``  0: a`` entries or ``- a`` items following a bare ``names:``."""
    mapping: dict[int, str] = {}
    items: list[str] = []
    for line in lines:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        entry = _YAML_MAP_ENTRY.match(line)
        item = _YAML_LIST_ENTRY.match(line)
        if entry is not None:
            mapping[int(entry.group(2))] = _unquote(_drop_comment(entry.group(3)).strip())
        elif item is not None:
            items.append(_unquote(_drop_comment(item.group(1)).strip()))
        else:
            break  # the next top-level key
    if mapping and not items:
        return _table(mapping)
    if items and not mapping:
        return tuple(items)
    return None


def _drop_comment(value: str) -> str:
    """Cut a YAML comment (`` #`` outside quotes)."""
    quote = ""
    for i, char in enumerate(value):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or value[i - 1] in " \t"):
            return value[:i]
    return value


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        inner = value[1:-1]
        return inner.replace("\\" + value[0], value[0]).replace("\\\\", "\\")
    return value


def _table(indexed: dict[int, str]) -> tuple[str, ...] | None:
    if not indexed or min(indexed) < 0 or max(indexed) >= _MAX_CLASSES:
        return None
    table = [""] * (max(indexed) + 1)
    for index, name in indexed.items():
        table[index] = name
    return tuple(table)
