"""What the module adds around invoke(), on a model that costs nothing, and grpcio's own cost of a call."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from bench import bare
from bench.cases.pipeline import in_process_service
from bench.cases.processes import serving
from bench.cases.socket import _detections_call
from bench.stats import summary, time_calls
from devkit.standin.launcher import short_tempdir
from module.gen.service.mlmodel.v1 import mlmodel_pb2 as mlpb
from module.gen.service.vision.v1 import vision_pb2 as vpb
from module.mlmodel import flat_tensors
from module.server import CHANNEL_OPTIONS


def constant_detector(out_dir: Path) -> Path:
    """A synthetic SSD-shaped detector (uint8 1x300x300x3 in, 10 fixed boxes out) whose invoke costs microseconds."""
    from devkit.models import detector_model

    boxes = [[0.05 * i, 0.1, 0.5 + 0.04 * i, 0.6] for i in range(10)]
    data = detector_model(boxes, [float(i) for i in range(10)], [0.9 - 0.05 * i for i in range(10)],
                          input_size=(300, 300), metadata=True, embedded_labels=[f"c{i}" for i in range(10)])
    path = out_dir / "constant_detector.tflite"
    path.write_bytes(data)
    return path


def overhead(model_path: Path, jpeg: bytes, n: int) -> dict[str, Any]:
    """What the module adds around ``invoke()``: the same calls as the SSD rows, on a model that costs ~nothing."""

    tensor = np.random.default_rng(0).integers(0, 255, size=(1, 300, 300, 3), dtype=np.uint8)
    interp = bare.interpreter_class("ai-edge-litert")(model_path=str(model_path), num_threads=1)
    interp.allocate_tensors()
    index = interp.get_input_details()[0]["index"]
    outputs = [d["index"] for d in interp.get_output_details()]

    def bare_call() -> None:
        interp.set_tensor(index, tensor)
        interp.invoke()
        for o in outputs:
            interp.get_tensor(o)

    out: dict[str, Any] = {"bare_set_invoke_get_ms": summary(time_calls(bare_call, n))}
    attrs = {"model_path": str(model_path), "num_threads": 1, "pool_size": 2}
    model, service = in_process_service(attrs, "const")
    out["in_process_infer_ms"] = summary(time_calls(lambda: model.infer({"x": tensor}), n))
    out["in_process_get_detections_ms"] = summary(time_calls(lambda: service.detections(jpeg, "image/jpeg"), n))
    model.close()

    process = serving(attrs, "const", "v")
    try:
        assert process.channel is not None
        infer_request = mlpb.InferRequest(name="const", input_tensors=flat_tensors.encode_all({"image": tensor}))
        out["socket_infer_ms"] = summary(time_calls(lambda: process.mlmodel.Infer(infer_request, timeout=30), n))
        get = _detections_call(process.channel, "v", jpeg)
        out["socket_get_detections_ms"] = summary(time_calls(get, n))
        props = vpb.GetPropertiesRequest(name="v")
        out["socket_get_properties_ms"] = summary(time_calls(lambda: process.vision.GetProperties(props, timeout=30), n))
    finally:
        process.close()
    out["grpc_floor_270kb_ms"] = summary(grpc_floor(infer_request.SerializeToString(), n))
    return out


def grpc_floor(payload: bytes, n: int) -> list[float]:
    """A unary call carrying ``payload`` to a grpcio server (same options, Unix socket) whose handler does nothing:
    what grpcio itself costs to move the bytes, with no module code on either side."""
    from concurrent import futures

    folder = short_tempdir()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=CHANNEL_OPTIONS)
    handler = grpc.unary_unary_rpc_method_handler(lambda request, context: b"")
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("bench.Floor", {"Call": handler}),))
    socket = os.path.join(folder, "floor.sock")
    server.add_insecure_port(f"unix:{socket}")
    server.start()
    channel = grpc.insecure_channel(f"unix:{socket}", options=CHANNEL_OPTIONS)
    try:
        call = channel.unary_unary("/bench.Floor/Call")
        return time_calls(lambda: call(payload, timeout=30), n)
    finally:
        channel.close()
        server.stop(0)
        shutil.rmtree(folder, ignore_errors=True)
