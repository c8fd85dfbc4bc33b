"""Label files: reading them (one label per line, line ``i`` naming class ``i``) and extracting the ones embedded in a
model to disk, so that any Viam vision service can read them by path (it reads ``output_info[i].extra["labels"]``)."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

from module.errors import ConfigError
from module.files import label_limit, read_config_file
from module.mlmodel.label_formats import parse_structured, strip_index_prefixes
from module.mlmodel.tflite_metadata import ModelMetadata, label_file_for

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def parse_labels(data: bytes) -> tuple[str, ...]:
    """Parse the contents of a label file.

    The bytes are decoded as UTF-8 (a leading byte-order mark is dropped, invalid bytes become U+FFFD, so this
    never raises). Lines may end in LF, CRLF or CR; each line is stripped of surrounding whitespace.

    Trailing blank lines are dropped, but a blank line *inside* the file keeps its position and becomes ``""``.
    Label ``i`` must stay line ``i`` because models index classes by position: the RDK's parser skipped blank
    lines, which shifted every later label by one and silently mislabelled results.

    A file made of a single line that contains commas is split on the commas (the RDK accepted that format).

    Training tools' own formats are recognised by their content (see :mod:`module.mlmodel.label_formats`): a TF
    Object Detection API ``label_map.pbtxt`` and the ``names`` of an Ultralytics / Roboflow ``data.yaml`` give the
    labels by class index, and lines that all start with their own index (``0 Cats``, Teachable Machine) lose it.

    Args:
        data: The raw file contents.

    Returns:
        The labels, in file order.
    """
    text = data.decode("utf-8-sig", errors="replace")
    structured = parse_structured(text)
    if structured is not None:
        return structured
    lines = [line.strip() for line in _LINE_BREAK.split(text)]
    while lines and not lines[-1]:
        lines.pop()
    if len(lines) == 1 and "," in lines[0]:
        lines = [part.strip() for part in lines[0].split(",")]
        while lines and not lines[-1]:
            lines.pop()
    return strip_index_prefixes(lines)


def read_label_file(path: str, attribute: str = "label_path", origin: str = "") -> tuple[str, ...]:
    """Read and parse a label file (module/files.py: regular files only, at most LABEL_MAX_BYTES).

    Args:
        path: Path of the file.
        attribute: The attribute that named it, for messages.
        origin: Where the path came from when no attribute of this resource named it (also for messages).

    Returns:
        The labels (see :func:`parse_labels`).

    Raises:
        ConfigError: The file is missing, unreadable, not a regular file, too large or holds no labels; the message
            names the attribute and the path.
    """
    limit = label_limit(attribute, origin)
    labels = parse_labels(read_config_file(path, limit))
    if not labels:
        raise ConfigError(f"{limit.where(path)} is empty")
    return labels


def labels_dir() -> Path:
    """``$VIAM_MODULE_DATA/labels`` under viam-server, else a per-user folder in the temp dir."""
    base = os.environ.get("VIAM_MODULE_DATA") or os.path.join(tempfile.gettempdir(), f"tflite-module-{os.getuid()}")
    return Path(base) / "labels"


def write_labels(names: tuple[str, ...], suffix: str) -> str:
    """Write class names as a label file (one per line, content-addressed) and return its path."""
    return _write(("\n".join(names) + "\n").encode("utf-8"), suffix)


def _write(data: bytes, name: str) -> str:
    folder = labels_dir()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    # The name comes from the model file: keep only safe characters so it cannot escape the folder.
    target = folder / f"{hashlib.sha256(data).hexdigest()[:16]}-{_SAFE.sub('_', os.path.basename(name))}"
    if not target.exists():
        fd, tmp = tempfile.mkstemp(dir=folder)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, target)
    return str(target)


def extract_embedded(meta: ModelMetadata | None) -> str | None:
    """Write the first embedded label file to disk (content-addressed) and return its path, or None if there is none."""
    if meta is None:
        return None
    for index in range(len(meta.outputs)):
        found = label_file_for(meta, index)
        if found is None:
            continue
        name, _ = found
        return _write(meta.files[name], name)
    return None
