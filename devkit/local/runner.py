"""Run vision services over every camera image through the module's socket: a table of what was found per image
with timings, annotated PNG copies (labelled boxes, classifications and each service's time on the picture), one
JSON line per image and service, an annotated video for each input video, ``index.html`` (a gallery of it all),
progress lines on stderr, and a summary with the module's per-stage times."""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Protocol, TextIO

import grpc
from PIL import Image

from devkit.local.annotate import Box, Label, save_annotated
from devkit.local.frames import FrameSource
from devkit.local.gallery import write_gallery
from devkit.local.results import ImageResult, ServiceResult
from devkit.local.video import VideoInputs
from devkit.local.video import encode as encode_video
from devkit.standin.parent import DepthData
from module.gen.common.v1 import common_pb2
from module.gen.service.vision.v1 import vision_pb2, vision_pb2_grpc
from module.resource.structs import dict_to_struct, struct_to_dict

CALL_TIMEOUT_S: Final = 60.0
TOP_CLASSES: Final = 3
_ROW: Final = "{:<%d} {:<%d} {:<24} {:>5}  {:<22} {:>7}"  # widths: the longest image and service names
_STAGES: Final = ("camera", "decode", "preprocess", "infer", "postprocess", "point_cloud", "projection", "outlier_removal")


class LineSink(Protocol):
    """Where JSON lines go (a file, or a file and stdout)."""

    def write(self, text: str, /) -> int: ...

    def flush(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Target:
    """A vision service, the camera it reads, and what it supports (from GetProperties)."""

    name: str
    camera: str
    detections: bool
    classifications: bool
    object_point_clouds: bool = False  # a detector reading a depth camera: GetObjectPointClouds too


@dataclass
class Outcome:
    images: int = 0
    errors: int = 0
    annotated: list[Path] = field(default_factory=list)
    ms: dict[str, list[float]] = field(default_factory=dict)
    results: list[ImageResult] = field(default_factory=list)
    videos: list[Path] = field(default_factory=list)
    gallery: Path | None = None


def properties(channel: grpc.Channel, name: str) -> vision_pb2.GetPropertiesResponse:
    stub = vision_pb2_grpc.VisionServiceStub(channel)
    reply: vision_pb2.GetPropertiesResponse = stub.GetProperties(vision_pb2.GetPropertiesRequest(name=name),
                                                                 timeout=CALL_TIMEOUT_S)
    return reply


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "~"


class Runner:
    def __init__(self, channel: grpc.Channel, cameras: Mapping[str, FrameSource], out: Path, *,
                 stdout: TextIO = sys.stdout, stderr: TextIO = sys.stderr, json_lines: LineSink | None = None,
                 videos: VideoInputs | None = None, depth: Mapping[str, DepthData] | None = None) -> None:
        self._vision = vision_pb2_grpc.VisionServiceStub(channel)
        self._cameras = cameras
        self._depth = depth or {}
        self._out = out
        self._stdout = stdout
        self._stderr = stderr
        self._json = json_lines
        self._videos = videos
        self._row = _ROW % (5, 7)

    def run(self, targets: Sequence[Target]) -> Outcome:
        """Every image of every camera the targets read, through each target reading that camera."""
        self._out.mkdir(parents=True, exist_ok=True)
        outcome = Outcome(ms={t.name: [] for t in targets})
        cameras = list(dict.fromkeys(t.camera for t in targets))
        total = sum(len(self._cameras[c].files) for c in cameras)
        self._row = _ROW % (max([5] + [len(f.name) for c in cameras for f in self._cameras[c].files]),
                            max([7] + [len(t.name) for t in targets]))
        print(self._row.format("image", "service", "label", "conf", "box (x0, y0, x1, y1)", "ms"), file=self._stdout)
        used: set[str] = set()
        for camera in cameras:
            source = self._cameras[camera]
            for index, path in enumerate(source.files):
                source.pin(index)  # every call below gets this frame from the parent
                self._progress(f"[{outcome.images + 1}/{total}] {path.name} ({camera})")
                result = ImageResult(path, camera, index)
                found = self._videos.frame_of(path) if self._videos is not None else None
                if found is not None:
                    result.video, result.frame = found[0].source.name, found[1]
                rows = self._one_image(result, [t for t in targets if t.camera == camera], outcome)
                name = path.stem if path.stem not in used else f"{path.stem}-{camera}-{index}"
                used.add(name)
                target = self._out / f"{name}.png"
                if target.resolve() == path.resolve():  # --out is the image folder: never overwrite an original
                    target = self._out / f"{name}-annotated.png"
                boxes = [b for r in result.results for b in r.boxes]
                labels = [c for r in result.results for c in r.labels]
                notes = ["  ".join(f"{r.service} {r.ms:.0f} ms" if r.ms is not None else f"{r.service} error"
                                   for r in result.results)]
                result.annotated = save_annotated(path, target, boxes, labels, notes)
                outcome.annotated.append(result.annotated)
                outcome.results.append(result)
                outcome.images += 1
                if self._json is not None:
                    for service in result.results:
                        self._json.write(json.dumps(result.to_json(service)) + "\n")
                    self._json.flush()
                self._progress("")
                for i, row in enumerate(rows):
                    print(self._row.format(path.name if i == 0 else "", *row), file=self._stdout, flush=True)
            source.pin(None)
        outcome.videos = self._annotated_videos(outcome)
        outcome.gallery = write_gallery(self._out, outcome.results, outcome.videos,
                                        title=f"{outcome.images} pictures through {', '.join(t.name for t in targets)}")
        return outcome

    def _annotated_videos(self, outcome: Outcome) -> list[Path]:
        """Each input video again, with the annotated frames (only when PyAV is there, as it was to decode it)."""
        if self._videos is None or not self._videos.videos:
            return []
        made = []
        for video in self._videos.videos.values():
            frames = [r.annotated for r in outcome.results if r.video == video.source.name and r.annotated]
            if frames:
                made.append(encode_video(frames, self._out / f"{video.source.stem}-annotated.mp4", video.fps))
        return made

    def _progress(self, text: str) -> None:
        """A "[k/n] image" line on stderr; on a terminal it is redrawn in place and cleared before the rows."""
        if self._stderr.isatty():
            self._stderr.write(f"\r\033[K{text}")
            self._stderr.flush()
        elif text:
            print(text, file=self._stderr, flush=True)

    def _one_image(self, result: ImageResult, targets: Sequence[Target], outcome: Outcome) -> list[tuple[str, ...]]:
        """Call every target on the pinned frame; records each ServiceResult in ``result``, returns table rows."""
        rows: list[tuple[str, ...]] = []
        for target in targets:
            started = time.perf_counter()
            try:
                found_boxes, found_labels = self._call(target)
                found_boxes += self._objects(target, result.source)
            except grpc.RpcError as exc:
                outcome.errors += 1
                error = f"{exc.code().name}: {exc.details()}"
                result.results.append(ServiceResult(target.name, error=error))
                rows.append((target.name, "error", "", _short(error, 60), ""))
                continue
            ms = (time.perf_counter() - started) * 1000
            outcome.ms[target.name].append(ms)
            result.results.append(ServiceResult(target.name, tuple(found_boxes), tuple(found_labels), ms))
            found = [(b.label, "3D", b.text.removeprefix(f"{b.label} ")) if b.text else
                     (b.label, f"{b.confidence:.2f}", f"({b.x_min}, {b.y_min}, {b.x_max}, {b.y_max})")
                     for b in found_boxes]
            found += [(c.label, f"{c.confidence:.2f}", "-") for c in found_labels]
            for i, (label, conf, box) in enumerate(found or [("-", "", "nothing found")]):
                first = i == 0
                rows.append((target.name if first else "", _short(label, 24), conf, box, f"{ms:.1f}" if first else ""))
        return rows

    def _call(self, target: Target) -> tuple[list[Box], list[Label]]:
        boxes: list[Box] = []
        labels: list[Label] = []
        if target.detections:
            reply = self._vision.GetDetectionsFromCamera(vision_pb2.GetDetectionsFromCameraRequest(
                name=target.name, camera_name=target.camera), timeout=CALL_TIMEOUT_S)
            boxes = [Box(d.class_name, d.confidence, d.x_min, d.y_min, d.x_max, d.y_max) for d in reply.detections]
        if target.classifications:
            found = self._vision.GetClassificationsFromCamera(vision_pb2.GetClassificationsFromCameraRequest(
                name=target.name, camera_name=target.camera, n=TOP_CLASSES), timeout=CALL_TIMEOUT_S)
            labels = [Label(c.class_name, c.confidence) for c in found.classifications]
        return boxes, labels

    def _objects(self, target: Target, path: Path) -> list[Box]:
        """GetObjectPointClouds for a depth camera: each object's 3D box drawn as the rectangle it projects onto
        (through the camera's intrinsics, scaled to the image), tagged with its label and distance."""
        depth = self._depth.get(target.camera)
        if not target.object_point_clouds or depth is None or depth.intrinsics is None:
            return []
        reply = self._vision.GetObjectPointClouds(vision_pb2.GetObjectPointCloudsRequest(
            name=target.name, camera_name=target.camera, mime_type="pointcloud/pcd"), timeout=CALL_TIMEOUT_S)
        width, height, fx, fy, ppx, ppy = depth.intrinsics
        with Image.open(path) as image:
            sx, sy = image.width / width, image.height / height
        boxes = []
        for obj in reply.objects:
            for g in obj.geometries.geometries:
                c, d = g.center, g.box.dims_mm
                corners = [(c.x + i * d.x / 2, c.y + j * d.y / 2, max(c.z + k * d.z / 2, 1.0))
                           for i in (-1, 1) for j in (-1, 1) for k in (-1, 1)]
                us = [(fx * x / z + ppx + 0.5) * sx for x, _, z in corners]
                vs = [(fy * y / z + ppy + 0.5) * sy for _, y, z in corners]
                boxes.append(Box(g.label, 1.0, round(min(us)), round(min(vs)), round(max(us)), round(max(vs)),
                                 text=f"{g.label} {c.z / 1000:.2f} m, {d.x:.0f}x{d.y:.0f}x{d.z:.0f} mm"))
        return boxes

    def summary(self, outcome: Outcome, seconds: float) -> None:
        """Per service: call times as the runner saw them, then the module's own per-stage means."""
        calls = sum(len(v) for v in outcome.ms.values())
        print(f"\n{outcome.images} images, {calls} calls in {seconds:.2f} s"
              + (f", {outcome.errors} errors" if outcome.errors else ""), file=self._stdout)
        for name, times in outcome.ms.items():
            if not times:
                continue
            stages = self._stages(name)
            print(f"  {name}: mean {statistics.fmean(times):.1f} ms, median {statistics.median(times):.1f}, "
                  f"min {min(times):.1f}, max {max(times):.1f}" + (f" (in the module: {stages})" if stages else ""),
                  file=self._stdout)
        if outcome.annotated:
            print(f"annotated images: {self._out}/ ({len(outcome.annotated)} PNG files)", file=self._stdout)
        for video in outcome.videos:
            print(f"annotated video: {video}", file=self._stdout)
        if outcome.gallery is not None:
            print(f"gallery: {outcome.gallery} (open it in a browser)", file=self._stdout)

    def _stages(self, name: str) -> str:
        try:
            reply = self._vision.DoCommand(common_pb2.DoCommandRequest(name=name, command=dict_to_struct(
                {"command": "stats"})), timeout=5)
        except grpc.RpcError:
            return ""
        stages = struct_to_dict(reply.result).get("stages", {})
        order = [s for s in _STAGES if s in stages] + [s for s in stages if s not in _STAGES]
        return ", ".join(f"{stage} {stages[stage].get('mean_ms', 0):.1f}" for stage in order) + " ms mean"
