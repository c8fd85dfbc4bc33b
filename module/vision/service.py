"""The mlmodel vision service: image (given, or fetched from a camera through the parent) -> mlmodel -> detections
and classifications. No gRPC here; module/servicers/vision.py adapts it to the wire."""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final, TypeVar

from module import call_state
from module.errors import DeadlineError, FailedPreconditionError, InvalidInputError, ResourceExhaustedError, UnavailableError
from module.mlmodel.types import MLModel
from module.parent import Frame, ParentClient, call_timeout
from module.resource.attributes import Attributes
from module.resource.registry import ResourceContext
from module.vision.classifications import Classification, class_probabilities, class_table, classifications
from module.vision.config import Thresholds, VisionConfig
from module.vision.detections import Detection, detections, yolo_detections
from module.vision.imaging import SUPPORTED_MIME_TYPES, normalize_mime, open_image, to_model_input
from module.vision.model_source import ModelSource
from module.vision.objects3d import Box2D, Intrinsics, Object3D, segment_objects
from module.vision.pcd import MIME_PCD, PCDError, PointCloud, read_pcd
from module.vision.plan import Plan, make_plan
from module.vision.scores import ClassTable
from module.vision.stats import StageStats
from module.vision.tensorize import image_to_tensor

T = TypeVar("T")

COMMANDS: Final = ("get_config", "set_thresholds", "stats")


@dataclass(frozen=True, slots=True)
class Properties:
    classifications_supported: bool
    detections_supported: bool
    default_camera: str
    object_point_clouds_supported: bool = False  # a detector: its boxes and a depth camera give 3D objects


@dataclass(frozen=True, slots=True)
class ObjectClouds:
    """GetObjectPointClouds' answer: the objects, in the frame of ``camera`` (the camera actually read)."""

    camera: str
    objects: list[Object3D]


@dataclass(frozen=True, slots=True)
class Capture:
    frame: Frame
    detections: list[Detection] | None
    classifications: list[Classification] | None
    objects: ObjectClouds | None = None  # CaptureAllFromCamera return_object_point_clouds, for a detector


class VisionService:
    """Runs images through an mlmodel and interprets its outputs. Thread-safe."""

    def __init__(self, config: VisionConfig, source: ModelSource, parent: Callable[[], ParentClient | None],
                 logger: logging.Logger | None = None) -> None:
        self.config = config
        self._source = source
        self._parent = parent
        self._log = logger or logging.getLogger(__name__)
        self._thresholds = config.thresholds  # replaced as a whole by set_thresholds: readers see old or new
        self._thresholds_lock = threading.Lock()  # set_thresholds read-modify-writes: concurrent ones must not lose keys
        self._plan_lock = threading.Lock()
        self._plan_for: tuple[weakref.ref[Any], Plan] | None = None
        self._class_table_for: tuple[Plan, Thresholds, ClassTable] | None = None
        self._effective_for: tuple[Plan, Thresholds, Thresholds] | None = None
        self.stats = StageStats()
        self._cloud_reader: concurrent.futures.ThreadPoolExecutor | None = None  # made on the first 3D call
        self._cloud_reader_lock = threading.Lock()

    @classmethod
    def create(cls, context: ResourceContext, config: VisionConfig) -> VisionService:
        service = cls(config, ModelSource(config.mlmodel_name, context.resources, context.parent, context.logger),
                      context.parent,
                      context.logger)
        service._plan(service._source.get())  # fail now, with names and shapes, if the model does not fit
        return service

    # --- plan ------------------------------------------------------------------------------------------------------

    def _plan(self, model: MLModel) -> Plan:
        """The plan for this model object; rebuilt when the mlmodel was replaced (reconfigured, re-added)."""
        cached = self._plan_for
        if cached is not None and cached[0]() is model:
            return cached[1]
        with self._plan_lock:
            plan = self._source.call(model, lambda m: make_plan(m.metadata(), self.config))
            self._plan_for = (weakref.ref(model), plan)  # weak: a replaced model is not kept alive by its plan
            self._log.info("mlmodel %r: %s layout (%s)%s", self.config.mlmodel_name, plan.layout.kind,
                           plan.layout.reason, f"; {plan.layout.note}" if plan.layout.note else "")
            return plan

    def _effective(self, plan: Plan) -> Thresholds:
        """The current thresholds with the model family's defaults for the unset ones (cached per plan/thresholds)."""
        thresholds = self._thresholds
        cached = self._effective_for
        if cached is None or cached[0] is not plan or cached[1] is not thresholds:
            family = plan.family
            cached = (plan, thresholds, thresholds.with_defaults(family.min_confidence, family.iou_threshold,
                                                                 family.max_detections))
            self._effective_for = cached
        return cached[2]

    # --- calls -----------------------------------------------------------------------------------------------------

    def detections(self, data: bytes, mime_type: str = "", *, camera: str = "") -> list[Detection]:
        """``camera``: the camera the bytes came from (a bad frame is then the camera's fault, not the caller's)."""
        return self._run(data, mime_type, lambda outputs, plan, geometry: self._detect(outputs, plan, geometry),
                         camera)

    def classifications(self, data: bytes, mime_type: str = "", n: int = 0, *, camera: str = "") -> list[Classification]:
        return self._run(data, mime_type, lambda outputs, plan, _: self._classify(outputs, plan, n), camera)

    def detections_from_camera(self, camera: str, timeout: float | None = None) -> list[Detection]:
        frame = self.frame(camera, timeout)
        return self.detections(frame.data, frame.mime_type, camera=self._camera_name(camera))

    def classifications_from_camera(self, camera: str, n: int, timeout: float | None = None) -> list[Classification]:
        frame = self.frame(camera, timeout)
        return self.classifications(frame.data, frame.mime_type, n, camera=self._camera_name(camera))

    def capture_all(self, camera: str, *, want_detections: bool, want_classifications: bool,
                    timeout: float | None = None, want_objects: bool = False) -> Capture:
        """One frame, and whichever results were asked for and this model supports (others are skipped). 3D objects
        come from that frame's detections and the camera's point cloud, read alongside."""
        plan = self._plan(self._source.get())
        if want_objects and plan.detects:
            name = self._camera_name(camera)

            def capture(deadline: float) -> Capture:
                return self.capture_all(name, want_detections=True, want_classifications=want_classifications,
                                        timeout=max(deadline - time.monotonic(), 0.0))

            two_d, cloud, intrinsics = self._with_cloud(name, timeout, capture)
            return replace(two_d, detections=two_d.detections if want_detections else None,
                           objects=self._objects(name, two_d.detections or [], cloud, intrinsics))
        frame = self.frame(camera, timeout)
        name = self._camera_name(camera)
        dets = self.detections(frame.data, frame.mime_type, camera=name) if want_detections and plan.detects else None
        cls = (self.classifications(frame.data, frame.mime_type, camera=name)
               if want_classifications and plan.classifier else None)
        return Capture(frame=frame, detections=dets, classifications=cls)

    def frame(self, camera: str, timeout: float | None = None) -> Frame:
        name = camera or self.config.camera_name
        if not name:
            raise InvalidInputError("no camera name given and the attribute 'camera_name' is not set")
        parent = self._parent()
        if parent is None:
            raise FailedPreconditionError(f"cannot read camera {name!r}: this module has no parent connection")
        with self.stats.time("camera"):
            return parent.get_frame(name, timeout)

    def object_point_clouds(self, camera: str, timeout: float | None = None) -> ObjectClouds:
        """3D objects: ``camera``'s image (through the detector, with this service's thresholds) and its point cloud
        and intrinsics, read concurrently within the caller's ``timeout``; see module/vision/objects3d.py.

        Raises:
            FailedPreconditionError: The model is not a detector; the camera has no point cloud (GetProperties
                ``supports_pcd`` false, no intrinsics, GetPointCloud failing, or a cloud that is not a readable PCD).
        """
        name = self._camera_name(camera)
        self._require_detector("GetObjectPointClouds")

        def detect(deadline: float) -> list[Detection]:
            frame = self.frame(name, max(deadline - time.monotonic(), 0.0))
            return self.detections(frame.data, frame.mime_type, camera=name)

        found, cloud, intrinsics = self._with_cloud(name, timeout, detect)
        return self._objects(name, found, cloud, intrinsics)

    def _camera_name(self, camera: str) -> str:
        name = camera or self.config.camera_name
        if not name:
            raise InvalidInputError("no camera name given and the attribute 'camera_name' is not set")
        return name

    def _require_detector(self, call: str) -> None:
        if not self._plan(self._source.get()).detects:
            raise FailedPreconditionError(f"mlmodel {self.config.mlmodel_name!r} is a classifier, not a detector: "
                                          f"{call} needs boxes")

    def _with_cloud(self, camera: str, timeout: float | None, work: Callable[[float], T]) -> tuple[T, PointCloud, Intrinsics]:
        """``work(deadline)`` on this thread while the camera's point cloud and intrinsics are read on another."""
        parent = self._parent()
        if parent is None:
            raise FailedPreconditionError(f"cannot read camera {camera!r}: this module has no parent connection")
        deadline = time.monotonic() + call_timeout(timeout)
        cloud_read = self._reader().submit(self._read_cloud, parent, camera, deadline)
        try:
            result = work(deadline)
            try:
                cloud, intrinsics = cloud_read.result(timeout=max(deadline - time.monotonic(), 0.0))
            except concurrent.futures.TimeoutError:
                raise DeadlineError(f"reading the point cloud of camera {camera!r} did not finish within the call's "
                                    "deadline") from None
        except BaseException:
            cloud_read.cancel()
            raise
        return result, cloud, intrinsics

    def _objects(self, camera: str, found: list[Detection], cloud: PointCloud, intrinsics: Intrinsics) -> ObjectClouds:
        # Boxes in normalised coordinates are boxes in a 1 x 1 image: segment_objects scales them to the intrinsics.
        boxes = [Box2D(d.x_min_normalized, d.y_min_normalized, d.x_max_normalized, d.y_max_normalized, d.class_name,
                       d.confidence) for d in found]
        objects = segment_objects(cloud, intrinsics, boxes, (1, 1), self.config.point_clouds, self.stats.time)
        return ObjectClouds(camera=camera, objects=objects)

    def _reader(self) -> concurrent.futures.ThreadPoolExecutor:
        with self._cloud_reader_lock:
            if self._cloud_reader is None:
                self._cloud_reader = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="point-cloud")
            return self._cloud_reader

    def _read_cloud(self, parent: ParentClient, camera: str, deadline: float) -> tuple[PointCloud, Intrinsics]:
        """The camera's intrinsics (cached by the parent client; forgotten when anything here fails, so a fixed or
        reconfigured camera is asked again) and its point cloud, parsed."""
        # The outlier filter's KD-tree (scipy, ~0.5 s and ~35 MB to import): loaded here, on the first 3D call and
        # while the detector runs on the other thread, rather than in every detector service at start-up.
        import scipy.spatial  # noqa: F401
        try:
            with self.stats.time("point_cloud"):
                props = parent.camera_properties(camera, max(deadline - time.monotonic(), 0.0))
                if not props.supports_pcd:
                    raise FailedPreconditionError(f"camera {camera!r} does not give point clouds (its GetProperties "
                                                  "says supports_pcd false): GetObjectPointClouds needs a depth camera")
                if props.intrinsics is None:
                    raise FailedPreconditionError(f"camera {camera!r} reports no intrinsic parameters: "
                                                  "GetObjectPointClouds needs them to match points to image boxes")
                intrinsics = Intrinsics(*props.intrinsics)
                try:
                    intrinsics.check(camera)
                except InvalidInputError as exc:
                    raise FailedPreconditionError(str(exc)) from None
                raw = parent.get_point_cloud(camera, max(deadline - time.monotonic(), 0.0))
                if raw.mime_type and raw.mime_type != MIME_PCD:
                    raise FailedPreconditionError(f"camera {camera!r} sent a point cloud as {raw.mime_type!r}; "
                                                  f"this module reads {MIME_PCD}")
                try:
                    return read_pcd(raw.data), intrinsics
                except PCDError as exc:
                    raise FailedPreconditionError(f"camera {camera!r} sent a point cloud this module cannot read: "
                                                  f"{exc}") from None
        except Exception:
            self.stats.count_error()
            parent.forget_camera(camera)
            raise

    def properties(self) -> Properties:
        plan = self._plan(self._source.get())
        return Properties(classifications_supported=plan.classifier is not None,
                          detections_supported=plan.detects, default_camera=self.config.camera_name,
                          object_point_clouds_supported=plan.detects)

    # --- pipeline --------------------------------------------------------------------------------------------------

    def _run(self, data: bytes, mime_type: str, finish: Callable[[Mapping[str, Any], Plan, tuple[Any, ...]], T],
             camera: str = "") -> T:
        # Working from the first byte decoded: another call reaching its infer while this one decodes is not alone,
        # and must not take the interpreter with every core (module/mlmodel/pool.py).
        with call_state.working():
            return self._pipeline(data, mime_type, finish, camera)

    def _pipeline(self, data: bytes, mime_type: str, finish: Callable[[Mapping[str, Any], Plan, tuple[Any, ...]], T],
                  camera: str) -> T:
        try:
            model = self._source.get()
            plan = self._plan(model)
            try:
                with self.stats.time("decode"):
                    image = open_image(data, mime_type)
                    original = image.size
                with self.stats.time("preprocess"):
                    rgb, letterbox = to_model_input(image, plan.input.size, letterbox=plan.resize_mode == "letterbox",
                                                    fill=plan.fill, center_crop=plan.resize_mode == "center_crop")
                    tensor = image_to_tensor(rgb, plan.input)
            except (InvalidInputError, ResourceExhaustedError) as exc:
                if not camera:
                    raise
                raise _camera_frame_error(camera, data, mime_type, exc) from None
            with self.stats.time("infer"):
                outputs = self._source.call(model, lambda m: m.infer({plan.input_name: tensor}))
            with self.stats.time("postprocess"):
                model_size = (rgb.shape[1], rgb.shape[0])
                return finish(outputs, plan, (model_size, letterbox, original))
        except Exception:
            self.stats.count_error()
            raise

    def _detect(self, outputs: Mapping[str, Any], plan: Plan, geometry: tuple[Any, ...]) -> list[Detection]:
        model_size, letterbox, original = geometry
        if plan.yolo is not None:
            return yolo_detections(outputs, plan.yolo, plan.layout, plan.labels, self._effective(plan),
                                   max_candidates=plan.max_candidates, model_size=model_size, letterbox=letterbox,
                                   original_size=original)
        if plan.detector is None:
            raise FailedPreconditionError(f"mlmodel {self.config.mlmodel_name!r} is a classifier, not a detector: "
                                          "use GetClassifications")
        return detections(outputs, plan.detector, plan.labels, self._effective(plan), model_size=model_size,
                          letterbox=letterbox, original_size=original)

    def _classify(self, outputs: Mapping[str, Any], plan: Plan, n: int) -> list[Classification]:
        if plan.classifier is None:
            raise FailedPreconditionError(f"mlmodel {self.config.mlmodel_name!r} is a detector, not a classifier: "
                                          "use GetDetections")
        probs = class_probabilities(outputs, plan.classifier)
        return classifications(probs, self._class_table(plan, probs.size), n)

    def _class_table(self, plan: Plan, count: int) -> ClassTable:
        """The table for this plan, the current thresholds and ``count`` classes, rebuilt only when one changes
        (racing callers may each build one; the last one stored wins, all are equal)."""
        thresholds = self._effective(plan)
        cached = self._class_table_for
        if cached is None or cached[0] is not plan or cached[1] is not thresholds or len(cached[2].names) != count:
            cached = (plan, thresholds, class_table(plan.labels, thresholds, count))
            self._class_table_for = cached
        return cached[2]

    # --- DoCommand / status ----------------------------------------------------------------------------------------

    def do_command(self, command: Mapping[str, Any]) -> dict[str, Any]:
        name = command.get("command")
        extra = sorted(k for k in command if k != "command")
        if name in ("get_config", "stats") and extra:
            # Nothing here takes a path or any other argument: say so rather than silently ignore one.
            raise InvalidInputError(f"command {name!r} takes no arguments, got {', '.join(map(repr, extra))}")
        if name == "get_config":
            return self._effective_config()
        if name == "set_thresholds":
            with self._thresholds_lock:
                self._thresholds = _merge_thresholds(self._thresholds,
                                                     {k: v for k, v in command.items() if k != "command"})
                return {"thresholds": self._thresholds.as_dict()}
        if name == "stats":
            return self.stats.snapshot()
        raise InvalidInputError(f"unknown command {name!r}; known commands: {', '.join(COMMANDS)} "
                                "(send {\"command\": \"<name>\", ...})")

    def _effective_config(self) -> dict[str, Any]:
        plan = self._plan(self._source.get())
        detector = plan.detector
        outputs: dict[str, Any]
        if detector:
            outputs = {"location": detector.location, "score": detector.score, "category": detector.category,
                       "n_detections": detector.count, "box_order": list(detector.box_order),
                       "normalized": detector.normalized}
        elif plan.yolo:
            outputs = {"predictions": plan.yolo.output, "max_candidates": plan.max_candidates}
        else:
            outputs = {"probability": plan.classifier.probability if plan.classifier else None}
        return {
            "mlmodel_name": self.config.mlmodel_name, "mlmodel_location": self._source.location(),
            "camera_name": self.config.camera_name, "resize_mode": plan.resize_mode,
            "layout": plan.layout.describe(), "family": plan.family.family,
            "input": {"name": plan.input_name, "dtype": plan.input.dtype.name, "width": plan.input.width,
                      "height": plan.input.height, "channels_first": plan.input.channels_first, "bgr": plan.input.bgr},
            "input_normalization": {"mean": list(plan.input.mean) if plan.input.mean else None,
                                    "std": list(plan.input.std) if plan.input.std else None,
                                    "scale": plan.input.scale, "zero_point": plan.input.zero_point},
            "role": "detector" if plan.detects else "classifier",
            "outputs": outputs,
            "labels": len(plan.labels),
            "thresholds": self._effective(plan).as_dict(),
        }

    def status(self) -> dict[str, Any]:
        return {"mlmodel_name": self.config.mlmodel_name, "mlmodel_location": self._source.location(),
                "camera_name": self.config.camera_name, **self.stats.snapshot()}

    def close(self) -> None:
        """Stop the point-cloud reader threads; the mlmodel belongs to its own resource."""
        with self._cloud_reader_lock:
            reader, self._cloud_reader = self._cloud_reader, None
        if reader is not None:
            reader.shutdown(wait=False, cancel_futures=True)


def _camera_frame_error(camera: str, data: bytes, mime_type: str,
                        exc: InvalidInputError | ResourceExhaustedError) -> Exception:
    """A frame from ``camera`` that cannot be used: the caller's request was fine, so not INVALID_ARGUMENT.

    * a type this service does not decode (depth, GIF, ...): FAILED_PRECONDITION, the camera's configuration must
      change, retrying will not help;
    * more pixels than the module decodes: RESOURCE_EXHAUSTED, as for an image sent directly;
    * empty, corrupt or cut-short bytes: UNAVAILABLE, which clients retry: a camera that glitched once (a frame
      cut off in transfer, a USB reset) usually sends a good next frame.
    """
    mime = normalize_mime(mime_type)
    if mime not in (*SUPPORTED_MIME_TYPES, ""):
        return FailedPreconditionError(f"camera {camera!r} sends {mime_type!r} images, which this service cannot "
                                       f"decode; configure it to send one of {', '.join(SUPPORTED_MIME_TYPES)}")
    if isinstance(exc, ResourceExhaustedError):
        return ResourceExhaustedError(f"camera {camera!r} sent a frame this module will not decode: {exc}")
    if not data:
        return UnavailableError(f"camera {camera!r} sent an empty frame ({mime_type or 'no mime type'})")
    return UnavailableError(f"camera {camera!r} sent a frame that cannot be decoded ({exc}); the next frame may be "
                            "fine")


def _merge_thresholds(current: Thresholds, changes: Mapping[str, Any]) -> Thresholds:
    """Apply set_thresholds: the same attribute names and checks as the config; unspecified ones keep their value."""
    attrs = Attributes(changes)
    parsed = Thresholds.parse(attrs)
    attrs.finish()
    return replace(current, **{name: getattr(parsed, name) for name in changes})
