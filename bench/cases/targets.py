"""The target comparisons, interleaved call by call: bare invoke, in-process, grpcio floor, over the socket."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from bench import bare
from bench.cases.common import SSD, SSD_ATTRS
from bench.cases.pipeline import in_process_service
from bench.cases.processes import ScriptServer, serving
from bench.cases.socket import _detections_call
from bench.stats import summary
from module.gen.service.mlmodel.v1 import mlmodel_pb2 as mlpb
from module.mlmodel import flat_tensors


def paired(jpeg: bytes, n: int) -> dict[str, Any]:
    """The target comparisons, interleaved call by call so every path sees the same machine state.

    This host's speed drifts by up to ~25 % from one few-second window to the next (the same bare ``invoke()``
    measured 17 ms and 22 ms minutes apart), so rows measured one after the other can differ by more than the
    1 ms the targets are about. Here each round times the bare interpreter, the in-process pipeline and the same
    calls over the socket back to back.
    """

    tensor = np.random.default_rng(0).integers(0, 255, size=(1, 300, 300, 3), dtype=np.uint8)
    interp = bare.interpreter_class("ai-edge-litert")(model_path=str(SSD), num_threads=1)
    interp.allocate_tensors()
    index = interp.get_input_details()[0]["index"]
    interp.set_tensor(index, tensor)
    model, service = in_process_service(SSD_ATTRS, "ssd")
    process = serving(SSD_ATTRS, "ssd", "vis")
    floor = ScriptServer("floor_server.py", str(SSD))
    invoke = floor.method("/bench.Floor/Invoke")
    try:
        assert process.channel is not None
        request = mlpb.InferRequest(name="ssd", input_tensors=flat_tensors.encode_all({"image": tensor}))
        raw = tensor.tobytes()
        calls: dict[str, Callable[[], Any]] = {
            "bare_invoke_ms": interp.invoke,
            "in_process_infer_ms": lambda: model.infer({"image": tensor}),
            "floor_socket_invoke_ms": lambda: invoke(raw, timeout=30),
            "socket_infer_ms": lambda: process.mlmodel.Infer(request, timeout=30),
            "in_process_get_detections_ms": lambda: service.detections(jpeg, "image/jpeg"),
            "socket_get_detections_ms": _detections_call(process.channel, "vis", jpeg),
        }
        samples: dict[str, list[float]] = {name: [] for name in calls}
        for _ in range(5):
            for call in calls.values():
                call()
        for _ in range(n):
            for name, call in calls.items():
                started = time.perf_counter()
                call()
                samples[name].append((time.perf_counter() - started) * 1000.0)
    finally:
        floor.close()
        process.close()
        model.close()
    out = {name: summary(values) for name, values in samples.items()}
    # Per-round differences: each pair was timed within ~50 ms, so the host's drift cancels out.
    for name, (a, b) in DIFFERENCES.items():
        out[name] = summary([x - y for x, y in zip(samples[a], samples[b], strict=True)])
    return out


DIFFERENCES: dict[str, tuple[str, str]] = {
    "floor_minus_bare_ms": ("floor_socket_invoke_ms", "bare_invoke_ms"),
    "socket_infer_minus_bare_ms": ("socket_infer_ms", "bare_invoke_ms"),
    "socket_infer_minus_floor_ms": ("socket_infer_ms", "floor_socket_invoke_ms"),
}
