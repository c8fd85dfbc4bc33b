"""The markdown table and the target checks, from the result dict bench/__main__.py builds."""

from __future__ import annotations

from typing import Any


def _get(d: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


def _ms(v: Any) -> str:
    return "—" if v is None else f"{v:.2f}"


def _lat_row(label: str, s: Any, note: str = "") -> str:
    if not isinstance(s, dict) or "p50" not in s:
        return f"| {label} | — | — | — | {note} |"
    return f"| {label} | {_ms(s['p50'])} | {_ms(s['p90'])} | {_ms(s['p99'])} | {note} |"


def _bare(result: dict[str, Any], runtime: str, model: str, threads: int) -> Any:
    rows = _get(result, "bare", runtime)
    if not isinstance(rows, list):
        return None
    for row in rows:
        if row.get("model") == model and row.get("threads") == threads:
            return row.get("invoke_ms", {}).get("median")
    return None


def checks(result: dict[str, Any]) -> list[dict[str, Any]]:
    out = []

    def check(name: str, value: Any, limit: Any, ok: bool | None, unit: str = "ms") -> None:
        out.append({"target": name, "value": value, "limit": limit, "unit": unit,
                    "met": None if value is None or limit is None else ok})

    ssd = "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite"
    # The interleaved measurements (cases.paired) when present: rows timed one after another drift with the host.
    paired = result.get("paired") or {}
    pipe = _get(paired, "in_process_get_detections_ms", "median") or _get(result, "in_process", "get_detections_ms", "median")
    sock = _get(paired, "socket_get_detections_ms", "median") or _get(result, "ours", "get_detections_ms", "median")
    limit = round(pipe * 1.10 + 1.0, 3) if pipe is not None else None
    check("GetDetections over socket <= 1.10 x in-process pipeline + 1 ms (median)", sock, limit,
          sock is not None and limit is not None and sock <= limit)
    invoke = (_get(paired, "bare_invoke_ms", "median") or _get(result, "in_process", "bare", "invoke_ms", "median")
              or _bare(result, "ai-edge-litert", ssd, 1))
    infer = _get(paired, "socket_infer_ms", "median") or _get(result, "ours", "infer_ms", "median")
    limit = round(invoke + 1.0, 3) if invoke is not None else None
    check("Infer 1x300x300x3 uint8 over socket <= bare invoke + 1 ms (median)", infer, limit,
          infer is not None and limit is not None and infer <= limit)
    floor = _get(paired, "floor_socket_invoke_ms", "median")
    check("(reference, not a target: the same bound for grpcio + bare invoke with no module code)", floor, limit,
          floor is not None and limit is not None and floor <= limit)
    ov_sock, ov_bare = _get(result, "overhead", "socket_infer_ms", "median"), _get(result, "overhead",
                                                                              "bare_set_invoke_get_ms", "median")
    limit = round(ov_bare + 1.0, 3) if ov_bare is not None else None
    check("same, isolated: Infer over socket <= bare set+invoke+get + 1 ms on the constant detector (median)",
          ov_sock, limit, ov_sock is not None and limit is not None and ov_sock <= limit)
    for key in ("encode_ms", "decode_ms"):
        v = _get(result, "flat_tensor_1m_float32", key, "median")
        check(f"FlatTensor {key[:-3]} of 1M float32 < 10 ms (median)", v, 10.0, v is not None and v < 10.0)
    scaling = _get(result, "ours", "throughput", "scaling")
    check("2 clients >= 1.7 x 1 client (GetDetections, pool_size=2, num_threads=1)", scaling, 1.7,
          scaling is not None and scaling >= 1.7, "x")
    start = _get(result, "ours", "start_to_ready_ms", "median")
    check("process start -> successful Ready < 1.5 s (python -m module, median)", start, 1500.0,
          start is not None and start < 1500.0)
    start_sh = _get(result, "ours", "start_to_ready_via_run_sh_ms", "median")
    check("process start -> successful Ready < 1.5 s (./run.sh, env exists, median)", start_sh, 1500.0,
          start_sh is not None and start_sh < 1500.0)
    add = _get(result, "ours", "add_resource_ssd_ms")
    check("AddResource of the SSD < 1 s", add, 1000.0, add is not None and add < 1000.0)
    growth = _get(result, "ours", "memory", "rss_growth_mb")
    calls = _get(result, "ours", "memory", "calls")
    check(f"RSS after {calls} GetDetections <= RSS after 100 + 10 MB", growth, 10.0,
          growth is not None and growth <= 10.0, "MB")
    fds = (_get(result, "ours", "memory", "fds_after_100"), _get(result, "ours", "memory", "fds_after_all"))
    check("no file descriptor growth", None if None in fds else fds[1] - fds[0], 0,
          None not in fds and fds[1] <= fds[0], "fds")
    for row in _get(result, "families", "rows") or []:
        if row.get("model") == "yolov8n_int8_dynamic_640_coco80.tflite":
            value = _get(row, "postprocess_ms", "median")
            check("post-processing of a [1,84,8400] YOLOv8 output (median)", value, 2.0,
                  value is not None and value < 2.0)
    return out


def render(result: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    m = result.get("machine", {})
    s = result.get("settings", {})
    lines = [
        f"## Benchmark ({result.get('started', '')}, {result.get('duration_s', '?')} s)",
        "",
        f"Machine: {m.get('cpu')}, {m.get('cores')} cores ({', '.join(m.get('cpu_flags', []))}), "
        f"{m.get('platform')}, Python {m.get('python')}; load average at start {m.get('load_average_at_start')}, "
        f"at end {m.get('load_average_at_end')} (the end includes this benchmark's own processes).",
        "Packages: " + ", ".join(f"{k} {v}" for k, v in m.get("packages", {}).items() if v) + "; "
        + "viam-sdk side: " + ", ".join(f"{k} {v}" for k, v in (_get(result, "sdk_client_ours", "versions") or {}).items())
        + ".",
        f"Model: SSD MobileNet v1 COCO quant (uint8, 300x300), attributes {s.get('ssd_attributes')}; image: "
        f"{_get(result, 'image', 'size')} JPEG made from {_get(result, 'image', 'source')} "
        f"({_get(result, 'image', 'bytes')} bytes). {s.get('samples')} samples per latency row.",
        "",
    ]
    # The load at the end includes this benchmark's own client and server; the one at the start does not.
    start_load = (m.get("load_average_at_start") or [0.0])[0]
    if start_load >= 1.0:
        lines += [f"**NOISY RUN: the 1-minute load average was {start_load} when it started (other work was running "
                  f"on these {m.get('cores')} cores); treat absolute numbers and ratios with care.**", ""]
    lines += [
        "### Latency (ms)",
        "",
        "| path | p50 | p90 | p99 | note |",
        "|---|---:|---:|---:|---|",
    ]
    ssd = "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite"
    bare_rows = _get(result, "bare", "ai-edge-litert") or []
    for row in bare_rows if isinstance(bare_rows, list) else []:
        if row.get("model") == ssd:
            lines.append(_lat_row(f"bare `invoke()` ai-edge-litert, {row['threads']} thread(s)", row.get("invoke_ms"),
                                  "model sweep (end of run)"))
    trt = _get(result, "bare", "tflite-runtime")
    for row in trt if isinstance(trt, list) else []:
        if row.get("model") == ssd:
            lines.append(_lat_row(f"bare `invoke()` tflite-runtime, {row['threads']} thread(s)", row.get("invoke_ms"),
                                  "model sweep; no quantized XNNPACK"))
    lines += [
        _lat_row("bare `invoke()` ai-edge-litert, 1 thread, next to the rows below", _get(result, "in_process", "bare",
                                                                                           "invoke_ms"), "the floor"),
        _lat_row("bare set_tensor + invoke + get_tensor, same", _get(result, "in_process", "bare", "set_invoke_get_ms")),
        _lat_row("in-process `TFLiteModel.infer` 1x300x300x3 uint8", _get(result, "in_process", "infer_ms")),
        _lat_row("in-process GetDetections pipeline", _get(result, "in_process", "get_detections_ms"),
                 "decode + resize + invoke + postprocess"),
    ]
    for stage, st in (_get(result, "in_process", "stages_ms") or {}).items():
        lines.append(_lat_row(f"&nbsp;&nbsp;stage: {stage}", st))
    lines += [
        _lat_row("**this module**, socket, grpcio: GetDetections", _get(result, "ours", "get_detections_ms")),
        _lat_row("**this module**, socket, grpcio: Infer", _get(result, "ours", "infer_ms")),
        _lat_row("this module, socket, viam-sdk client: GetDetections",
                 _get(result, "sdk_client_ours", "get_detections_ms")),
        _lat_row("this module, socket, viam-sdk client: Infer", _get(result, "sdk_client_ours", "infer_ms")),
        _lat_row("viam-sdk alternative, socket, grpcio: GetDetections",
                 _get(result, "sdk_alternative", "get_detections_ms")),
        _lat_row("viam-sdk alternative, socket, grpcio: Infer", _get(result, "sdk_alternative", "infer_ms")),
        _lat_row("viam-sdk alternative, socket, viam-sdk client: GetDetections",
                 _get(result, "sdk_client_sdk_alternative", "get_detections_ms")),
        _lat_row("viam-sdk alternative, socket, viam-sdk client: Infer",
                 _get(result, "sdk_client_sdk_alternative", "infer_ms")),
        "",
        "### Throughput, start, memory",
        "",
        "| | this module | viam-sdk alternative |",
        "|---|---:|---:|",
    ]

    def both(label: str, *keys: str, fmt: str = "{}") -> str:
        a, b = _get(result, "ours", *keys), _get(result, "sdk_alternative", *keys)
        return f"| {label} | {'—' if a is None else fmt.format(a)} | {'—' if b is None else fmt.format(b)} |"

    bp = result.get("bare_parallel") or {}
    lines += [
        f"| bare `invoke()`/s, 1 vs 2 interpreters in 2 threads (hardware ceiling) | "
        f"{bp.get('invokes_per_s_1_thread', '—')} -> {bp.get('invokes_per_s_2_threads', '—')} "
        f"({bp.get('scaling', '—')}x) | |",
        both("GetDetections/s, 1 client", "throughput", "1_client", "calls_per_s"),
        both("GetDetections/s, 2 clients", "throughput", "2_clients", "calls_per_s"),
        both("scaling 2 vs 1 client", "throughput", "scaling", fmt="{:.2f}x"),
        both("start -> Ready, median ms (python directly)", "start_to_ready_ms", "median"),
        both("start -> Ready via ./run.sh, median ms", "start_to_ready_via_run_sh_ms", "median"),
        both("AddResource SSD, ms", "add_resource_ssd_ms"),
        both("RSS after 100 GetDetections, MB", "memory", "rss_kb_after_100", fmt="{:.1f}").replace(
            "| —", "| —"),
        both("GetDetections before the last RSS reading", "memory", "calls"),
        both("RSS growth after that, MB", "memory", "rss_growth_mb"),
        both("open fds after 100 / after all", "memory", "fds_after_100"),
        "",
    ]
    # kB -> MB for the RSS row, fds row shows both numbers
    for i, line in enumerate(lines):
        if line.startswith("| RSS after 100"):
            vals = [_get(result, k, "memory", "rss_kb_after_100") for k in ("ours", "sdk_alternative")]
            lines[i] = "| RSS after 100 GetDetections, MB | " + " | ".join(
                "—" if v is None else f"{v / 1024:.1f}" for v in vals) + " |"
        if line.startswith("| open fds"):
            vals = [(_get(result, k, "memory", "fds_after_100"), _get(result, k, "memory", "fds_after_all"))
                    for k in ("ours", "sdk_alternative")]
            lines[i] = "| open fds after 100 / after all | " + " | ".join(
                "—" if None in v else f"{v[0]} / {v[1]}" for v in vals) + " |"

    paired = result.get("paired") or {}
    if paired:
        lines += [
            "### Side by side, interleaved call by call (SSD; the targets use these; ms)",
            "",
            "| path | p50 | p90 | p99 | note |",
            "|---|---:|---:|---:|---|",
            _lat_row("bare `invoke()`", paired.get("bare_invoke_ms"), "the floor"),
            _lat_row("in-process `TFLiteModel.infer`", paired.get("in_process_infer_ms")),
            _lat_row("grpcio + bare `invoke()` in another process, no module code", paired.get("floor_socket_invoke_ms"),
                     "the transport floor (bench/floor_server.py)"),
            _lat_row("**this module** over the socket: Infer 1x300x300x3 uint8", paired.get("socket_infer_ms")),
            _lat_row("in-process GetDetections pipeline", paired.get("in_process_get_detections_ms"),
                     "decode + resize + invoke + postprocess"),
            _lat_row("**this module** over the socket: GetDetections 640x480 JPEG", paired.get("socket_get_detections_ms")),
            "",
            "Differences within each round (ms):",
            "",
            "| difference | p50 | p90 | p99 | note |",
            "|---|---:|---:|---:|---|",
            _lat_row("grpcio floor − bare `invoke()`", paired.get("floor_minus_bare_ms"),
                     "what grpcio costs on this machine"),
            _lat_row("this module's Infer − bare `invoke()`", paired.get("socket_infer_minus_bare_ms"), "the target's gap"),
            _lat_row("this module's Infer − grpcio floor", paired.get("socket_infer_minus_floor_ms"),
                     "the module's own share"),
            "",
        ]
    ov = result.get("overhead") or {}
    if ov:
        lines += [
            "### Module overhead around `invoke()` (synthetic constant detector, same shapes; ms)",
            "",
            "| path | p50 | p90 | p99 | note |",
            "|---|---:|---:|---:|---|",
            _lat_row("bare set_tensor + invoke + get_tensor", ov.get("bare_set_invoke_get_ms")),
            _lat_row("in-process `TFLiteModel.infer`", ov.get("in_process_infer_ms")),
            _lat_row("Infer 1x300x300x3 uint8 over socket, grpcio", ov.get("socket_infer_ms"),
                     "transport of 270 kB + servicer"),
            _lat_row("in-process GetDetections 640x480 JPEG", ov.get("in_process_get_detections_ms"),
                     "decode + resize + postprocess"),
            _lat_row("GetDetections 640x480 JPEG over socket, grpcio", ov.get("socket_get_detections_ms")),
            _lat_row("GetProperties over socket (fixed cost of one RPC)", ov.get("socket_get_properties_ms")),
            _lat_row("grpcio alone: a call carrying the same 270 kB to a do-nothing handler", ov.get("grpc_floor_270kb_ms"),
                     "the transport floor, no module code"),
            "",
        ]
    ft = result.get("flat_tensor_1m_float32", {})
    sdk_ft = _get(result, "sdk_client_ours", "sdk_flat_tensor_1m_float32") or {}
    lines += [
        "### FlatTensor, 1M float32 (median ms)",
        "",
        "| | encode | decode |",
        "|---|---:|---:|",
        f"| module/tensors.py | {_ms(_get(ft, 'encode_ms', 'median'))} | {_ms(_get(ft, 'decode_ms', 'median'))} |",
        f"| module/tensors.py incl. SerializeToString / FromString | {_ms(_get(ft, 'encode_serialize_ms', 'median'))} "
        f"| {_ms(_get(ft, 'parse_decode_ms', 'median'))} |",
        f"| viam-sdk `ndarrays_to_flat_tensors` / `flat_tensors_to_ndarrays` (protobuf 6) | "
        f"{_ms(_get(sdk_ft, 'encode_ms', 'median'))} | {_ms(_get(sdk_ft, 'decode_ms', 'median'))} |",
        "",
    ]
    pc = result.get("point_clouds", {})
    lines += [
        f"### GetObjectPointClouds stages, 640x480 organised cloud ({pc.get('points', '?')} points), in-process",
        "",
        "| | median | p90 |",
        "|---|---:|---:|",
        *(f"| {label} | {_ms(_get(pc, key, 'median'))} | {_ms(_get(pc, key, 'p90'))} |" for label, key in (
            ("read the binary PCD", "read_pcd_ms"),
            ("3 objects: boxes, depth split, outlier filter (mean_k 50), geometry", "segment_3_objects_ms"),
            ("the same + a box over the whole frame (worst case)", "segment_3_objects_and_whole_frame_ms"),
            ("write the 3 objects' PCDs", "write_objects_pcd_ms"))),
        f"| peak memory (tracemalloc, read + 4 boxes) | {pc.get('peak_memory_mb', '?')} MB | |",
        "",
        "### Bare interpreter, every model (median `invoke()` ms)",
        "",
        "| model | litert 1 thr | litert 2 thr | tflite-runtime 1 thr | tflite-runtime 2 thr |",
        "|---|---:|---:|---:|---:|",
    ]
    models = sorted({r["model"] for r in bare_rows if isinstance(r, dict) and "model" in r}) if isinstance(
        bare_rows, list) else []
    for model in models:
        cells = [_ms(_bare(result, rt, model, t)) for rt in ("ai-edge-litert", "tflite-runtime") for t in (1, 2)]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    if isinstance(result.get("families"), dict):
        from bench.cases.families import render as render_families

        lines += ["", *render_families(result["families"])]
    found = checks(result)
    lines += ["", "### Targets", "", "| target | value | limit | met |", "|---|---:|---:|---|"]
    for c in found:
        met = {True: "yes", False: "**no**", None: "—"}[c["met"]]
        lines.append(f"| {c['target']} | {c['value']} {c['unit']} | {c['limit']} {c['unit']} | {met} |")
    return "\n".join(lines), found
