"""Cases 3, 4, 6, 8: a module over its socket (latency, throughput, memory) and the official SDK client."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from bench.cases.common import COCO_LABELS, NO_PARENT, REPO, SDK_MLMODEL, SDK_VISION, SSD, SSD_ATTRS, log
from bench.cases.processes import _fds, _ready, _rss_kb, start_ours, start_sdk, start_times
from bench.stats import run_for, summary, time_calls
from devkit.standin.launcher import MLMODEL, VISION, ModuleProcess
from module.gen.service.mlmodel.v1 import mlmodel_pb2 as mlpb
from module.gen.service.mlmodel.v1 import mlmodel_pb2_grpc
from module.gen.service.vision.v1 import vision_pb2 as vpb
from module.gen.service.vision.v1 import vision_pb2_grpc
from module.mlmodel import flat_tensors
from module.server import CHANNEL_OPTIONS


def _detections_call(channel: grpc.Channel, name: str, jpeg: bytes) -> Callable[[], Any]:
    stub = vision_pb2_grpc.VisionServiceStub(channel)
    request = vpb.GetDetectionsRequest(name=name, image=jpeg, mime_type="image/jpeg")
    return lambda: stub.GetDetections(request, timeout=30)


def throughput(address: str, name: str, jpeg: bytes, clients: int, seconds: float) -> dict[str, Any]:
    """Calls per second with ``clients`` threads, each with its own channel, calling back to back."""
    channels = [grpc.insecure_channel(f"unix:{address}", options=CHANNEL_OPTIONS) for _ in range(clients)]
    calls = [_detections_call(c, name, jpeg) for c in channels]
    for call in calls:
        for _ in range(3):
            call()
    done, elapsed = run_for(calls, seconds)
    for c in channels:
        c.close()
    return {"clients": clients, "calls": done, "seconds": round(elapsed, 2), "calls_per_s": round(done / elapsed, 2)}


def over_socket(process: Any, pid: int, jpeg: bytes, n: int, memory_calls: int, tput_seconds: float,
                vision: str = "vis", mlmodel: str = "ssd", with_infer: bool = True) -> dict[str, Any]:
    """Latency (grpcio client), throughput at 1 and 2 clients and memory of a module already serving ``vision``."""
    assert process.channel is not None
    get = _detections_call(process.channel, vision, jpeg)
    out: dict[str, Any] = {"detections_per_call": len(get().detections)}
    done = 1
    for _ in range(99):
        get()
    done += 99
    out["memory"] = {"rss_kb_after_100": _rss_kb(pid), "fds_after_100": _fds(pid)}
    out["get_detections_ms"] = summary(time_calls(get, n))
    done += n + 5
    if with_infer:
        stub = mlmodel_pb2_grpc.MLModelServiceStub(process.channel)
        tensor = np.random.default_rng(0).integers(0, 255, size=(1, 300, 300, 3), dtype=np.uint8)
        request = mlpb.InferRequest(name=mlmodel, input_tensors=flat_tensors.encode_all({"image": tensor}))
        out["infer_ms"] = summary(time_calls(lambda: stub.Infer(request, timeout=30), n))
    one = throughput(process.socket, vision, jpeg, 1, tput_seconds)
    two = throughput(process.socket, vision, jpeg, 2, tput_seconds)
    done += one["calls"] + two["calls"] + 9
    out["throughput"] = {"1_client": one, "2_clients": two,
                         "scaling": round(two["calls_per_s"] / one["calls_per_s"], 3) if one["calls_per_s"] else None}
    remaining = max(0, memory_calls - done)
    log(f"memory: {remaining} more GetDetections (total {max(done, memory_calls)})")
    for _ in range(remaining):
        get()
    done += remaining
    rss = _rss_kb(pid)
    out["memory"].update({"calls": done, f"rss_kb_after_{done}": rss, "rss_kb_after_all": rss, "fds_after_all": _fds(pid),
                          "rss_growth_mb": round((rss - out["memory"]["rss_kb_after_100"]) / 1024, 2)})
    return out


def ours(jpeg: bytes, n: int, memory_calls: int, tput_seconds: float, start_repeats: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    log("our module: start -> Ready")
    out["start_to_ready_ms"] = start_times(lambda: start_ours(False), start_repeats)
    out["start_to_ready_via_run_sh_ms"] = start_times(lambda: start_ours(True), start_repeats)
    process, _ = start_ours(False)
    try:
        started = time.perf_counter()
        process.add("ssd", MLMODEL, SSD_ATTRS)
        out["add_resource_ssd_ms"] = round((time.perf_counter() - started) * 1000, 1)
        started = time.perf_counter()
        process.add("vis", VISION, {"mlmodel_name": "ssd"}, deps=("rdk:service:mlmodel/ssd",))
        out["add_resource_vision_ms"] = round((time.perf_counter() - started) * 1000, 1)
        log("our module: latency, throughput, memory")
        out.update(over_socket(process, process.proc.pid, jpeg, n, memory_calls, tput_seconds))
    finally:
        process.close()
    return out


def sdk_alternative(python: str, jpeg: bytes, n: int, memory_calls: int, tput_seconds: float,
                    start_repeats: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    log("viam-sdk alternative: start -> Ready")
    out["start_to_ready_ms"] = start_times(lambda: start_sdk(python), start_repeats)
    process, _ = start_sdk(python)
    try:
        started = time.perf_counter()
        process.add("ssd", SDK_MLMODEL, {"model_path": str(SSD), "num_threads": 1})
        out["add_resource_ssd_ms"] = round((time.perf_counter() - started) * 1000, 1)
        process.add("vis", SDK_VISION, {"mlmodel_name": "ssd", "label_path": str(COCO_LABELS)})
        log("viam-sdk alternative: latency, throughput, memory")
        out.update(over_socket(process, process.proc.pid, jpeg, n, memory_calls, tput_seconds))
    except Exception:
        log(process.log()[-3000:])
        raise
    finally:
        process.close()
    return out


def sdk_client(python: str, target: str, jpeg_path: Path, n: int, sdk_python_for_alt: str | None) -> dict[str, Any]:
    """The official SDK client, run in the SDK venv, against ``target`` ("ours" or "sdk_alternative")."""
    if target == "ours":
        process: Any = ModuleProcess(env=NO_PARENT, log_level=None)
        process.wait_for_socket()
        _ready(process.module)
        process.add("ssd", MLMODEL, SSD_ATTRS)
        process.add("vis", VISION, {"mlmodel_name": "ssd"}, deps=("rdk:service:mlmodel/ssd",))
    else:
        assert sdk_python_for_alt is not None
        process, _ = start_sdk(sdk_python_for_alt)
        process.add("ssd", SDK_MLMODEL, {"model_path": str(SSD), "num_threads": 1})
        process.add("vis", SDK_VISION, {"mlmodel_name": "ssd", "label_path": str(COCO_LABELS)})
    try:
        argv = [python, str(REPO / "bench" / "sdk_client.py"), process.socket, "vis", "ssd", str(jpeg_path), str(n)]
        if target == "ours":
            argv.append("--tensor-helpers")
        done = subprocess.run(argv, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            return {"error": done.stderr[-2000:]}
        return json.loads(done.stdout)
    finally:
        process.close()
