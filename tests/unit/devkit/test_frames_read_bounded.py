"""The local runner's camera images are read like every configured file (module/files.py): bounded, regular files
only, never blocking on a FIFO."""

from __future__ import annotations

import os
from pathlib import Path

import PIL.Image
import pytest

from devkit.local.frames import encode

pytestmark = pytest.mark.timeout(20)


def test_an_image_is_encoded(tmp_path: Path) -> None:
    PIL.Image.new("RGB", (4, 3)).save(tmp_path / "a.bmp")
    data, mime = encode(tmp_path / "a.bmp")
    assert mime == "image/png" and data.startswith(b"\x89PNG")


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "directory"])
def test_a_path_that_is_no_regular_file_fails_without_blocking(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "frame.jpg"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")
    else:
        path.mkdir()
    with pytest.raises(ValueError, match="'color_image_file_path'"):
        encode(path)
