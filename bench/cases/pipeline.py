"""Case 2: the module's own VisionService + TFLiteModel called in-process (no gRPC), and its profile."""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from bench import bare
from bench.cases.common import SSD, SSD_ATTRS
from bench.stats import summary, time_calls


def in_process_service(attrs: dict[str, Any], name: str) -> tuple[Any, Any]:
    """A TFLiteModel called ``name`` and a VisionService on it, in this process (no gRPC): (model, service)."""
    from module.mlmodel.config import TFLiteConfig
    from module.mlmodel.model import TFLiteModel
    from module.resource.manager import ResourceManager
    from module.resource.names import MLMODEL_API
    from module.resource.registry import ResourceContext
    from module.vision.config import VisionConfig
    from module.vision.service import VisionService

    resources = ResourceManager()
    model = TFLiteModel(TFLiteConfig.parse(attrs), name=name)
    resources.put(MLMODEL_API, name, model)
    service = VisionService.create(ResourceContext(name="vis", dependencies=(), resources=resources,
                                                   parent=lambda: None), VisionConfig.parse({"mlmodel_name": name}))
    return model, service


def in_process(jpeg: bytes, n: int) -> dict[str, Any]:
    """The module's own VisionService + TFLiteModel objects, called directly (no gRPC), plus a stage breakdown."""
    from module.vision import detections as results
    from module.vision.imaging import open_image, to_model_input
    from module.vision.plan import make_plan
    from module.vision.tensorize import image_to_tensor

    model, service = in_process_service(SSD_ATTRS, "ssd")
    config = service.config
    found = service.detections(jpeg, "image/jpeg")
    out: dict[str, Any] = {"runtime": model.runtime.name, "detections_per_call": len(found)}
    # The floor, measured right here so the comparisons below share the machine's state.
    out["bare"] = bare.measure("ai-edge-litert", str(SSD), 1, n)
    out["get_detections_ms"] = summary(time_calls(lambda: service.detections(jpeg, "image/jpeg"), n))
    tensor = np.random.default_rng(0).integers(0, 255, size=(1, 300, 300, 3), dtype=np.uint8)
    out["infer_ms"] = summary(time_calls(lambda: model.infer({"x": tensor}), n))

    # Stage breakdown, same functions the service calls.
    plan = make_plan(model.metadata(), config)
    holder: dict[str, Any] = {}

    def decode_resize() -> None:
        img = open_image(jpeg, "image/jpeg")
        holder["size"] = img.size
        holder["rgb"], holder["letterbox"] = to_model_input(img, plan.input.size)

    def tensorize() -> None:
        holder["tensor"] = image_to_tensor(holder["rgb"], plan.input)

    def infer() -> None:
        holder["outputs"] = model.infer({plan.input_name: holder["tensor"]})

    def postprocess() -> None:
        assert plan.detector is not None
        results.detections(holder["outputs"], plan.detector, plan.labels, config.thresholds, model_size=(300, 300),
                           letterbox=holder["letterbox"], original_size=holder["size"])

    stages = {}
    for name, fn in (("decode_resize", decode_resize), ("tensorize", tensorize), ("infer", infer),
                     ("postprocess", postprocess)):
        stages[name] = summary(time_calls(fn, n))
    out["stages_ms"] = stages
    model.close()
    return out


def profile_in_process(jpeg: bytes, n: int = 200) -> str:
    """cProfile of the in-process GetDetections path; the top functions by own time."""
    import cProfile
    import pstats


    model, service = in_process_service(SSD_ATTRS, "ssd")
    service.detections(jpeg, "image/jpeg")
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(n):
        service.detections(jpeg, "image/jpeg")
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(15)
    model.close()
    return text.getvalue()
