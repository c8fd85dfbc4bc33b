"""Embedded label files, extracted to disk so that any Viam vision service can read them by path.

Viam's vision service reads labels from the path in ``output_info[i].extra["labels"]``; a model whose labels live
only inside the .tflite (as a zip member) would otherwise have none.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

from module.mlmodel.tflite_metadata import ModelMetadata, label_file_for

_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def labels_dir() -> Path:
    """``$VIAM_MODULE_DATA/labels`` under viam-server, else a per-user folder in the temp dir."""
    base = os.environ.get("VIAM_MODULE_DATA") or os.path.join(tempfile.gettempdir(), f"tflite-module-{os.getuid()}")
    return Path(base) / "labels"


def extract_embedded(meta: ModelMetadata | None) -> str | None:
    """Write the first embedded label file to disk (content-addressed) and return its path, or None if there is none."""
    if meta is None:
        return None
    for index in range(len(meta.outputs)):
        found = label_file_for(meta, index)
        if found is None:
            continue
        name, _ = found
        data = meta.files[name]
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
    return None
