"""Camera frames from files: one image, a folder of images, or an image sequence given as a glob pattern."""

from __future__ import annotations

import glob
import io
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from PIL import Image

from devkit.local.video import is_video
from devkit.standin.parent import CameraFrame
from module.errors import ConfigError
from module.files import image_limit, read_config_file
from module.gen.component.camera.v1 import camera_pb2

IMAGE_SUFFIXES: Final = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
_PASS_THROUGH: Final = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png"}
_FORMATS: Final = {"image/jpeg": camera_pb2.FORMAT_JPEG, "image/png": camera_pb2.FORMAT_PNG}


VideoFrames = Callable[[Path], list[Path]]  # a video file -> its frames as image files (see devkit/local/video.py)


def expand(spec: str, base: Path, video: VideoFrames | None = None) -> list[Path]:
    """The image files ``spec`` names (relative to ``base``): a file, a folder (sorted) or a glob (sorted). A video
    file (named, or matched by the glob) stands for its frames, as ``video`` decodes them.

    Raises:
        ValueError: Nothing there, no image in it, or a video that cannot be decoded.
    """
    path = Path(spec).expanduser()
    path = path if path.is_absolute() else base / path
    if glob.has_magic(spec):
        found = [Path(p) for p in sorted(glob.glob(str(path), recursive=True))]
        named = [p for p in found if p.is_file() and (p.suffix.lower() in IMAGE_SUFFIXES or is_video(p))]
    elif path.is_dir():
        named = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    elif path.is_file():
        named = [path]
    else:
        raise ValueError(f"{spec!r}: no such file or folder ({path})")
    files: list[Path] = []
    for file in named:
        if not is_video(file):
            files.append(file)
        elif video is None:
            raise ValueError(f"{spec!r}: {file.name} is a video; video input is not available here")
        else:
            files += video(file)
    if not files:
        raise ValueError(f"{spec!r}: no images there (looked for {', '.join(sorted(IMAGE_SUFFIXES))} in {path})")
    return files


def encode(path: Path) -> tuple[bytes, str]:
    """The bytes a camera would send for ``path``: JPEG and PNG as they are, other formats as PNG.

    Read through module/files.py like every file the module is configured with: a regular file of at most
    IMAGE_MAX_BYTES (a path that became a FIFO or a link to /dev/zero since it was listed fails, it never blocks).

    Raises:
        ValueError: The file cannot be read (the message names the attribute and the path).
    """
    try:
        data = read_config_file(str(path), image_limit("color_image_file_path"))
    except ConfigError as exc:
        raise ValueError(str(exc)) from None
    mime = _PASS_THROUGH.get(path.suffix.lower())
    if mime:
        return data, mime
    with Image.open(io.BytesIO(data)) as image:
        out = io.BytesIO()
        rgb = image.convert("RGBA" if "A" in image.getbands() else "RGB")
        rgb.save(out, format="PNG", compress_level=1)  # fast: it is sent, not kept
    return out.getvalue(), "image/png"


@dataclass(frozen=True, slots=True)
class Frame:
    index: int
    path: Path
    data: bytes
    mime_type: str


class FrameSource:
    """The frames of one camera. Each read returns the current frame and, unless pinned, moves on to the next
    (cycling at the end). Thread-safe; the last encoded frame is cached."""

    def __init__(self, files: Sequence[Path]) -> None:
        if not files:
            raise ValueError("a camera needs at least one image")
        self.files = tuple(files)
        self._lock = threading.Lock()
        self._next = 0
        self._pinned: int | None = None
        self._cache: Frame | None = None
        self.reads = 0

    def pin(self, index: int | None) -> None:
        """Serve frame ``index`` on every read (None: cycle through the frames again)."""
        with self._lock:
            self._pinned = index

    def read(self) -> Frame:
        with self._lock:
            index = self._pinned if self._pinned is not None else self._next
            if self._pinned is None:
                self._next = (self._next + 1) % len(self.files)
            self.reads += 1
            if self._cache is None or self._cache.index != index:
                data, mime = encode(self.files[index])
                self._cache = Frame(index, self.files[index], data, mime)
            return self._cache

    def frames(self) -> list[CameraFrame]:
        """GetImages' answer: the next frame (the stand-in parent's CameraSource)."""
        frame = self.read()
        return [CameraFrame(frame.data, frame.mime_type, _FORMATS.get(frame.mime_type, camera_pb2.FORMAT_UNSPECIFIED))]
