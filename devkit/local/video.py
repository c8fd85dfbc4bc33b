"""Video files as camera input for the local runner, through PyAV (``pip install av``, an optional extra: neither
the module nor the rest of the runner needs it).

A video is decoded once into numbered JPEG frames under ``<out>/frames/<name>/``; those frames are then an ordinary
image sequence for the camera. After the run, the annotated frames are encoded back into ``<out>/<name>-annotated.mp4``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Final

VIDEO_SUFFIXES: Final = frozenset({".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"})
DEFAULT_MAX_FRAMES: Final = 300
INSTALL_HINT: Final = "video input needs PyAV, an optional extra: .venv/bin/python -m pip install av"


class VideoUnavailable(RuntimeError):
    """PyAV is not installed, or the file cannot be decoded."""


@dataclass(frozen=True, slots=True)
class Video:
    """A decoded video: where it came from, its frames on disk (in order) and their rate."""

    source: Path
    frames: tuple[Path, ...]
    fps: Fraction
    truncated: bool  # more frames than max_frames: only the first ones were kept


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


def _av() -> Any:
    try:
        import av  # noqa: PLC0415 - optional: imported only when a video is given
    except ImportError:
        raise VideoUnavailable(INSTALL_HINT) from None
    return av


def extract(source: Path, folder: Path, max_frames: int = DEFAULT_MAX_FRAMES) -> Video:
    """Decode ``source`` into ``folder/<stem>-000001.jpg``, ... (at most ``max_frames``)."""
    av = _av()
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob(f"{source.stem}-*.jpg"):
        old.unlink()
    frames: list[Path] = []
    truncated = False
    try:
        with av.open(str(source)) as container:
            stream = container.streams.video[0]
            fps = Fraction(stream.average_rate or stream.guessed_rate or 25)
            for frame in container.decode(stream):
                if len(frames) == max_frames:
                    truncated = True
                    break
                path = folder / f"{source.stem}-{len(frames) + 1:06d}.jpg"
                frame.to_image().save(path, format="JPEG", quality=92)
                frames.append(path)
    except (av.error.FFmpegError, IndexError) as exc:
        raise VideoUnavailable(f"{source}: cannot decode it as a video: {exc}") from None
    if not frames:
        raise VideoUnavailable(f"{source}: the video has no frames")
    return Video(source, tuple(frames), fps, truncated)


def encode(frames: Sequence[Path], target: Path, fps: Fraction) -> Path:
    """The images ``frames`` (annotated frames, all the same size) as an H.264 MP4 (MPEG-4 if H.264 is missing)."""
    av = _av()
    from PIL import Image  # noqa: PLC0415

    with Image.open(frames[0]) as first:
        width, height = first.size
    width, height = width - width % 2, height - height % 2  # yuv420p needs even sizes
    with av.open(str(target), mode="w") as container:
        try:
            stream = container.add_stream("libx264", rate=fps)
        except (av.error.FFmpegError, ValueError):
            stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for path in frames:
            with Image.open(path) as image:
                rgb = image.convert("RGB").resize((width, height)) if image.size != (width, height) \
                    else image.convert("RGB")
            for packet in stream.encode(av.VideoFrame.from_image(rgb)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return target


class VideoInputs:
    """Decodes each video the runner is given once (``inputs(path)`` -> its frames, for frames.expand) and remembers
    which frame came from which video, so the runner can label frames and put the annotated video together."""

    def __init__(self, folder: Path, max_frames: int = DEFAULT_MAX_FRAMES) -> None:
        self.folder = folder
        self.max_frames = max_frames
        self.videos: dict[Path, Video] = {}
        self._frames: dict[Path, tuple[Video, int]] = {}

    def __call__(self, path: Path) -> list[Path]:
        key = path.resolve()
        if key not in self.videos:
            try:
                video = extract(path, self.folder / path.stem, self.max_frames)
            except VideoUnavailable as exc:
                raise ValueError(str(exc)) from None
            self.videos[key] = video
            self._frames |= {frame: (video, number) for number, frame in enumerate(video.frames, 1)}
        return list(self.videos[key].frames)

    def frame_of(self, path: Path) -> tuple[Video, int] | None:
        """The video ``path`` was decoded from and its frame number (from 1), or None for an ordinary image."""
        return self._frames.get(path)
