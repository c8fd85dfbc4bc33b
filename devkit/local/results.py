"""What one vision service found on one picture, as the local runner reports it: the table rows, the JSON lines of
``--json`` and the rows of the gallery page all come from these records."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devkit.local.annotate import Box, Label


@dataclass(frozen=True, slots=True)
class ServiceResult:
    """One vision service on one picture: what it found and how long the call took (or the error it gave)."""

    service: str
    boxes: tuple[Box, ...] = ()
    labels: tuple[Label, ...] = ()
    ms: float | None = None
    error: str = ""


@dataclass(slots=True)
class ImageResult:
    """Every service's result on one picture (a file, or a frame of a video), and where its annotated copy went."""

    source: Path
    camera: str
    index: int  # position in the camera's pictures
    results: list[ServiceResult] = field(default_factory=list)
    annotated: Path | None = None
    video: str = ""  # the video this frame came from, if any
    frame: int | None = None  # frame number in that video

    def to_json(self, service: ServiceResult) -> dict[str, Any]:
        """One JSON line: the picture, the service, every detection and classification, and the call's time."""
        record: dict[str, Any] = {"image": str(self.source), "camera": self.camera, "service": service.service}
        if self.video:
            record |= {"video": self.video, "frame": self.frame}
        if service.error:
            record["error"] = service.error
        else:
            record["ms"] = round(service.ms or 0.0, 3)
            record["detections"] = [{"label": b.label, "confidence": round(b.confidence, 4),
                                     "box": [b.x_min, b.y_min, b.x_max, b.y_max]} for b in service.boxes]
            record["classifications"] = [{"label": c.label, "confidence": round(c.confidence, 4)}
                                         for c in service.labels]
        if self.annotated is not None:
            record["annotated"] = str(self.annotated)
        return record
