"""Issue 13: the default attributes (``model_path`` only) against the in-process floor and ceiling, per model.

Two targets, both with the defaults:

* one client: GetDetections over the socket <= 1.10 x the in-process pipeline on one interpreter with
  ``num_threads`` = cores + 1 ms. Timed call by call in rounds: reference, this module, the viam-sdk alternative.
* as many clients as cores: GetDetections/s >= 0.80 x the in-process ceiling (one single-thread interpreter per
  core, each in its own thread running the whole reference pipeline). Timed window by window in rounds:
  ceiling, this module, the viam-sdk alternative.

The reference pipeline is deliberately plain (the issue's definition, bench/reference.py): Pillow decode,
``convert("RGB")``, ``resize(BILINEAR)`` to the input size, set_tensor, invoke, read every output. Beside it, the
transport floor: the same pipeline behind a plain grpcio server in its own process (bench/pipeline_floor_server.py),
in the same rounds, so what grpcio alone costs on this machine is measured next to what the module costs. Run only
these rows with ``python -m bench --only defaults``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

from bench.cases.common import COCO_LABELS, SDK_MLMODEL, SDK_VISION, TESTDATA, log
from bench.cases.processes import ScriptServer, _fds, _rss_kb, start_ours, start_sdk
from bench.cases.socket import _detections_call
from bench.reference import Reference
from bench.stats import run_for, summary
from devkit.standin.launcher import MLMODEL, VISION
from module.mlmodel.config import cpu_cores
from module.server import CHANNEL_OPTIONS

MODELS = {
    "ssd": TESTDATA / "models" / "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite",
    "yolov8n": TESTDATA / "models" / "yolov8n_int8_dynamic_640_coco80.tflite",
}


def _rate(workers: list[Callable[[], Any]], seconds: float) -> float:
    """Calls per second of ``workers`` (one thread each) calling back to back for ``seconds``."""
    calls, elapsed = run_for(workers, seconds)
    return calls / elapsed


def _serve_ours(model: Path) -> tuple[Any, bool]:
    """This module with the model's defaults (model_path only) and a vision service on it, if the model fits one."""
    process, _ = start_ours(False)
    started = time.perf_counter()
    process.add("m", MLMODEL, {"model_path": str(model)})
    add_ms = (time.perf_counter() - started) * 1000
    try:
        process.add("vis", VISION, {"mlmodel_name": "m"}, deps=("rdk:service:mlmodel/m",))
        has_vision = True
    except grpc.RpcError as exc:
        log(f"vision service refused {model.name}: {exc.details()}")
        has_vision = False
    process.add_ms = add_ms
    return process, has_vision


def _works(call: Callable[[], Any]) -> str | None:
    """None when ``call`` succeeds, else why not (a model the vision service cannot read yet)."""
    try:
        call()
    except grpc.RpcError as exc:
        return f"{exc.code().name}: {exc.details()}"
    return None


def defaults(jpeg: bytes, n: int, seconds: float, rounds: int, sdk_python: str | None,
             models: tuple[str, ...] = tuple(MODELS)) -> dict[str, Any]:
    cores = cpu_cores()
    out: dict[str, Any] = {"cores": cores}
    for key in models:
        log(f"defaults: {key}")
        out[key] = _one_model(MODELS[key], jpeg, n, seconds, rounds, sdk_python if key == "ssd" else None, cores)
    return out


def _one_model(model: Path, jpeg: bytes, n: int, seconds: float, rounds: int, sdk_python: str | None,
               cores: int) -> dict[str, Any]:
    out: dict[str, Any] = {"model": model.name}
    wide = Reference(model, cores)
    narrow = [Reference(model, 1) for _ in range(cores)]
    process, has_vision = _serve_ours(model)
    floor: ScriptServer | None = None
    sdk = None
    try:
        floor = ScriptServer("pipeline_floor_server.py", str(model), str(cores))
        out["add_resource_ms"] = round(process.add_ms, 1)
        out["rss_mb_after_add"] = round(_rss_kb(process.proc.pid) / 1024, 1)
        assert process.channel is not None
        ours = _detections_call(process.channel, "vis", jpeg)
        why = _works(ours) if has_vision else "no vision service on this model"
        if why is not None:
            out["pending"] = f"GetDetections with the defaults does not work on this model yet ({why})"
            log(out["pending"])
        if sdk_python is not None:
            sdk, _ = start_sdk(sdk_python)
            sdk.add("m", SDK_MLMODEL, {"model_path": str(model)})
            sdk.add("vis", SDK_VISION, {"mlmodel_name": "m", "label_path": str(COCO_LABELS)})
            assert sdk.channel is not None
        preprocess, infer = _ours_in_process(model, jpeg)
        calls: dict[str, Callable[[], Any]] = {
            "bare_invoke_all_cores_ms": wide.interpreter.invoke,
            "reference_preprocess_ms": lambda: wide.tensor(jpeg),
            "ours_preprocess_ms": preprocess,
            "ours_infer_in_process_ms": infer,
            "reference_pipeline_all_cores_ms": lambda: wide(jpeg),
            "floor_pipeline_over_grpcio_ms": _raw_call(floor.channel, "/bench.PipelineFloor/Alone", jpeg),
        }
        if why is None:
            calls["ours_get_detections_ms"] = ours
        if sdk is not None:
            calls["sdk_alternative_get_detections_ms"] = _detections_call(sdk.channel, "vis", jpeg)
        out["one_client"] = _interleaved_calls(calls, n)
        out["one_client"]["floor_over_reference_ratio"] = _ratios(out["one_client"], "floor_pipeline_over_grpcio_ms")
        if why is None:
            out["one_client"]["ours_over_reference_ratio"] = _ratios(out["one_client"], "ours_get_detections_ms")
            if sdk is not None:
                out["one_client"]["sdk_over_reference_ratio"] = _ratios(out["one_client"],
                                                                        "sdk_alternative_get_detections_ms")
        floor_socket = floor.socket
        windows: dict[str, Callable[[], float]] = {
            "ceiling_in_process_per_s": lambda: _rate([lambda r=r: r(jpeg) for r in narrow], seconds),
            "floor_over_grpcio_per_s": lambda: _clients_rate(floor_socket, jpeg, cores, seconds,
                                                             "/bench.PipelineFloor/Shared"),
        }
        if why is None:
            windows["ours_per_s"] = lambda: _clients_rate(process.socket, jpeg, cores, seconds)
        if sdk is not None:
            windows["sdk_alternative_per_s"] = lambda: _clients_rate(sdk.socket, jpeg, cores, seconds)
        out["many_clients"] = _interleaved_windows(windows, rounds)
        out["rss_mb_after_calls"] = round(_rss_kb(process.proc.pid) / 1024, 1)
        out["fds"] = _fds(process.proc.pid)
        out["status"] = _status(process)
    finally:
        process.close()
        if floor is not None:
            floor.close()
        if sdk is not None:
            sdk.close()
    out["rss_solo_cost_mb"] = _solo_rss_cost(model)
    return out


def _ours_in_process(model: Path, jpeg: bytes) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """The module's own pre-processing (the vision service's steps, its default config) and TFLiteModel.infer
    with the defaults, in this process: (pre-process the JPEG, infer that tensor)."""
    from module.mlmodel.config import TFLiteConfig
    from module.mlmodel.model import TFLiteModel
    from module.vision.config import VisionConfig
    from module.vision.imaging import open_image, to_model_input
    from module.vision.plan import make_plan
    from module.vision.tensorize import image_to_tensor

    loaded = TFLiteModel(TFLiteConfig.parse({"model_path": str(model)}), name="m")
    config = VisionConfig.parse({"mlmodel_name": "m"})
    plan = make_plan(loaded.metadata(), config)

    def preprocess() -> Any:
        rgb, _ = to_model_input(open_image(jpeg, "image/jpeg"), plan.input.size,
                                letterbox=plan.resize_mode == "letterbox", fill=plan.fill,
                                center_crop=plan.resize_mode == "center_crop")
        return image_to_tensor(rgb, plan.input)

    tensor = {plan.input_name: preprocess()}
    return preprocess, lambda: loaded.infer(tensor)


def _interleaved_calls(calls: dict[str, Callable[[], Any]], n: int) -> dict[str, Any]:
    """Each round calls every path once, back to back: the host's drift hits all of them alike."""
    for _ in range(5):
        for call in calls.values():
            call()
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(n):
        for name, call in calls.items():
            started = time.perf_counter()
            call()
            samples[name].append((time.perf_counter() - started) * 1000.0)
    out: dict[str, Any] = {name: summary(values) for name, values in samples.items()}
    out["_samples"] = samples
    return out


def _ratios(one_client: dict[str, Any], key: str) -> dict[str, Any]:
    """Per-round ratio path / reference, and the target's slack per round: 1.10 x reference + 1 ms - path."""
    ours, ref = one_client["_samples"][key], one_client["_samples"]["reference_pipeline_all_cores_ms"]
    return {"ratio": _summary_ratio([a / b for a, b in zip(ours, ref, strict=True)]),
            "slack_ms": summary([1.10 * b + 1.0 - a for a, b in zip(ours, ref, strict=True)])}


def _summary_ratio(values: list[float]) -> dict[str, Any]:
    s = summary(values)
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in s.items()}


def _clients_rate(socket: str, jpeg: bytes, clients: int, seconds: float, raw_method: str = "") -> float:
    """Calls/s of ``clients`` threads, each on its own channel: GetDetections on "vis", or ``raw_method`` with the
    JPEG as the whole request (the pipeline floor server)."""
    channels = [grpc.insecure_channel(f"unix:{socket}", options=CHANNEL_OPTIONS) for _ in range(clients)]
    try:
        calls = [_raw_call(c, raw_method, jpeg) if raw_method else _detections_call(c, "vis", jpeg) for c in channels]
        for call in calls:
            call()
        return _rate(calls, seconds)
    finally:
        for c in channels:
            c.close()


def _raw_call(channel: grpc.Channel, method: str, body: bytes) -> Callable[[], Any]:
    call = channel.unary_unary(method)
    return lambda: call(body, timeout=30)


def _interleaved_windows(windows: dict[str, Callable[[], float]], rounds: int) -> dict[str, Any]:
    """Each round runs every path for one window, back to back; ratios are taken within a round."""
    rates: dict[str, list[float]] = {name: [] for name in windows}
    for _ in range(rounds):
        for name, window in windows.items():
            rates[name].append(window())
    out: dict[str, Any] = {name: summary(values) for name, values in rates.items()}
    ceiling = rates["ceiling_in_process_per_s"]
    for name in windows:
        if name != "ceiling_in_process_per_s":
            out[name.replace("_per_s", "_over_ceiling_ratio")] = _summary_ratio(
                [a / b for a, b in zip(rates[name], ceiling, strict=True)])
    out["_rates"] = rates
    return out


def _status(process: Any) -> dict[str, Any]:
    from module.gen.common.v1 import common_pb2
    from module.gen.service.mlmodel.v1 import mlmodel_pb2_grpc
    from module.resource.structs import struct_to_dict

    stub = mlmodel_pb2_grpc.MLModelServiceStub(process.channel)
    return struct_to_dict(stub.GetStatus(common_pb2.GetStatusRequest(name="m"), timeout=10).result)


def _solo_rss_cost(model: Path) -> dict[str, Any]:
    """RSS of a module holding the model with the defaults vs with the same pool and no all-cores interpreter."""
    out = {}
    for label, attrs in (("defaults", {"model_path": str(model)}),
                         ("without_solo", {"model_path": str(model), "num_threads": 1, "pool_size": cpu_cores()})):
        process, _ = start_ours(False)
        try:
            before = _rss_kb(process.proc.pid)
            process.add("m", MLMODEL, attrs)
            out[label + "_mb"] = round((_rss_kb(process.proc.pid) - before) / 1024, 1)
        finally:
            process.close()
    out["solo_cost_mb"] = round(out["defaults_mb"] - out["without_solo_mb"], 1)
    return out


def memory(jpeg: bytes, calls: int) -> dict[str, Any]:
    """RSS and fds of this module with the defaults (SSD) after 100 and after ``calls`` GetDetections, one client."""
    process, _ = _serve_ours(MODELS["ssd"])
    try:
        assert process.channel is not None
        get = _detections_call(process.channel, "vis", jpeg)
        for _ in range(100):
            get()
        first, fds = _rss_kb(process.proc.pid), _fds(process.proc.pid)
        for _ in range(calls - 100):
            get()
        last = _rss_kb(process.proc.pid)
        return {"calls": calls, "rss_mb_after_100": round(first / 1024, 1), "rss_mb_after_all": round(last / 1024, 1),
                "rss_growth_mb": round((last - first) / 1024, 2), "fds_after_100": fds,
                "fds_after_all": _fds(process.proc.pid)}
    finally:
        process.close()


def render(result: dict[str, Any]) -> str:
    """Markdown rows for the defaults case."""
    lines = [f"### Defaults (`model_path` only), {result['cores']} cores: one client and {result['cores']} clients",
             "", "One client, interleaved call by call (ms):", "",
             "| model | path | p50 | p90 |", "|---|---|---:|---:|"]
    names = {"bare_invoke_all_cores_ms": "bare `invoke()`, num_threads = cores",
             "reference_preprocess_ms": "reference pre-processing (decode, RGB, resize, tensor)",
             "ours_preprocess_ms": "this module's pre-processing, in-process (decode, resize, tensor)",
             "ours_infer_in_process_ms": "this module's `TFLiteModel.infer` with the defaults, in-process, alone",
             "reference_pipeline_all_cores_ms": "**reference in-process pipeline, num_threads = cores**",
             "floor_pipeline_over_grpcio_ms": "the same pipeline behind a plain grpcio server (no module code)",
             "ours_get_detections_ms": "**this module**, GetDetections over the socket",
             "sdk_alternative_get_detections_ms": "viam-sdk alternative, GetDetections over the socket"}
    for key, row in result.items():
        if not isinstance(row, dict) or "one_client" not in row:
            continue
        for name, label in names.items():
            s = row["one_client"].get(name)
            if s:
                lines.append(f"| {key} | {label} | {s['p50']:.2f} | {s['p90']:.2f} |")
        for name, label in (("floor_over_reference_ratio", "grpcio floor / reference, per round"),
                            ("ours_over_reference_ratio", "this module / reference, per round"),
                            ("sdk_over_reference_ratio", "viam-sdk alternative / reference, per round")):
            r = row["one_client"].get(name)
            if r:
                lines.append(f"| {key} | {label} (ratio) | {r['ratio']['p50']:.3f} | {r['ratio']['p90']:.3f} |")
                lines.append(f"| {key} | {label}: slack 1.10 x ref + 1 ms − path | {r['slack_ms']['p50']:.2f} | "
                             f"{r['slack_ms']['p90']:.2f} |")
        if "pending" in row:
            lines.append(f"| {key} | GetDetections: {row['pending']} | — | — |")
    lines += ["", f"{result['cores']} clients, interleaved window by window (calls/s, and ratios within a round):", "",
              "| model | path | p50 | p90 |", "|---|---|---:|---:|"]
    for key, row in result.items():
        if not isinstance(row, dict) or "many_clients" not in row:
            continue
        for name, s in row["many_clients"].items():
            if name.startswith("_"):
                continue
            lines.append(f"| {key} | {name} | {s['p50']:.3f} | {s['p90']:.3f} |")
        cost = row.get("rss_solo_cost_mb", {})
        lines.append(f"| {key} | RSS of the model: defaults / without the all-cores interpreter / cost (MB) | "
                     f"{cost.get('defaults_mb')} / {cost.get('without_solo_mb')} | {cost.get('solo_cost_mb')} |")
    lines += ["", "Targets (defaults only):", "", "| model | target | value | limit | met |", "|---|---|---:|---:|---|"]
    for key, row in result.items():
        if not isinstance(row, dict) or "one_client" not in row:
            continue
        ours, ref = row["one_client"].get("ours_get_detections_ms"), row["one_client"]["reference_pipeline_all_cores_ms"]
        if ours:
            limit = 1.10 * ref["p50"] + 1.0
            lines.append(f"| {key} | one client: GetDetections p50 <= 1.10 x reference p50 + 1 ms | {ours['p50']:.2f} ms | "
                         f"{limit:.2f} ms | {'yes' if ours['p50'] <= limit else '**no**'} |")
        ratio = row.get("many_clients", {}).get("ours_over_ceiling_ratio")
        if ratio:
            lines.append(f"| {key} | {result['cores']} clients: calls/s >= 0.80 x ceiling (p50 of per-round ratios) | "
                         f"{ratio['p50']:.3f} | 0.80 | {'yes' if ratio['p50'] >= 0.8 else '**no**'} |")
        if "pending" in row:
            lines.append(f"| {key} | GetDetections targets | pending | | {row['pending']} |")
    mem = result.get("memory")
    if mem:
        lines += ["", f"Memory with the defaults (SSD): RSS {mem['rss_mb_after_100']} MB after 100 GetDetections, "
                  f"{mem['rss_growth_mb']:+} MB after {mem['calls']}; fds {mem['fds_after_100']} -> {mem['fds_after_all']}"]
    return "\n".join(lines)


def strip_samples(result: dict[str, Any]) -> dict[str, Any]:
    """The result without raw samples (kept out of the saved JSON)."""
    if isinstance(result, dict):
        return {k: strip_samples(v) for k, v in result.items() if not k.startswith("_")}
    return result
