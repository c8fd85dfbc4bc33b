"""``python -m bench [--quick] [--memory-calls N] [--save]``: every measurement in one run, a table, and JSON.

Writes bench/results/bench-<time>.json (gitignored) and, with ``--save``, bench/RESULTS.json + bench/RESULTS.md.
See bench/README.md for what each row measures.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import cases
from bench.report import render

HERE = Path(__file__).resolve().parent


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--quick", action="store_true", help="short run: fewer samples, 300 calls for the memory case")
    p.add_argument("--samples", type=int, help="latency samples per case (default 300, quick 50)")
    p.add_argument("--memory-calls", type=int, help="GetDetections before the last RSS reading (default 10000, quick 300)")
    p.add_argument("--throughput-seconds", type=float, help="seconds per throughput case (default 10, quick 3)")
    p.add_argument("--skip-bare", action="store_true", help="skip the bare-interpreter sweep over every model")
    p.add_argument("--skip-sdk", action="store_true", help="skip the viam-sdk client and the viam-sdk alternative")
    p.add_argument("--save", action="store_true", help="also write bench/RESULTS.json and bench/RESULTS.md")
    p.add_argument("--only", choices=("defaults",),
                   help="run only these rows: 'defaults' = issue 13's targets with model_path only (bench/cases/defaults.py)")
    p.add_argument("--models", default="ssd,yolov8n", help="with --only defaults: which models (default ssd,yolov8n)")
    p.add_argument("--rounds", type=int, help="with --only defaults: throughput windows per path (default 8, quick 3)")
    p.add_argument("--settle-seconds", type=float, default=120.0,
                   help="wait up to this long for the load average to fall below 0.7 first (default 120; 0: don't)")
    return p.parse_args(argv)


def settle(limit_s: float, below: float = 0.7) -> None:
    """Wait (at most ``limit_s``) for the 1-minute load average to fall below ``below``: work that just finished
    (a test run, a build) would otherwise still be slowing the first cases down."""
    deadline = time.monotonic() + limit_s
    load = os.getloadavg()[0]
    if load >= below and limit_s > 0:
        cases.log(f"load average {load:.2f}: waiting up to {limit_s:.0f} s for it to fall below {below}")
    while load >= below and time.monotonic() < deadline:
        time.sleep(5)
        load = os.getloadavg()[0]


def run_defaults(args: argparse.Namespace, n: int, memory_calls: int, seconds: float) -> int:
    """``--only defaults``: issue 13's rows, their table, and bench/results/defaults-<time>.json."""
    from bench.cases import defaults

    started = time.time()
    sdk_python = None if args.skip_sdk else cases.venv_python(
        ".venv-sdk-bench", ".venv-sdk", needs=("viam.services.mlmodel", "viam.services.vision", "ai_edge_litert", "PIL"))
    result: dict[str, Any] = {"started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                              "machine": cases.machine()}
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        jpeg = cases.make_jpeg(Path(tmp)).read_bytes()
    models = tuple(m for m in args.models.split(",") if m)
    rounds = args.rounds or (3 if args.quick else 8)
    result.update(defaults.defaults(jpeg, n, seconds, rounds, sdk_python, models))
    if args.memory_calls:
        cases.log(f"defaults: memory over {memory_calls} GetDetections")
        result["memory"] = defaults.memory(jpeg, memory_calls)
    result["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result["duration_s"] = round(time.time() - started, 1)
    table = defaults.render(result)
    print(table)
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    path = out_dir / f"defaults-{datetime.datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(defaults.strip_samples(result), indent=1) + "\n")
    print(f"\nJSON: {path}")
    return 0


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    n = args.samples or (50 if args.quick else 300)
    memory_calls = args.memory_calls or (300 if args.quick else 10_000)
    seconds = args.throughput_seconds or (3.0 if args.quick else 10.0)
    start_repeats = 2 if args.quick else 5
    bare_n = 30 if args.quick else 200
    if not cases.SSD.exists():
        print(f"bench needs the shared test data (missing {cases.SSD})", file=sys.stderr)
        return 2

    settle(args.settle_seconds)
    if args.only == "defaults":
        return run_defaults(args, n, memory_calls, seconds)
    started = time.time()
    result: dict[str, Any] = {
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "settings": {"quick": args.quick, "samples": n, "memory_calls": memory_calls, "throughput_seconds": seconds,
                     "start_repeats": start_repeats, "bare_samples": bare_n, "ssd_attributes": cases.SSD_ATTRS},
        "machine": cases.machine(),
    }
    sdk_python = None if args.skip_sdk else cases.venv_python(
        ".venv-sdk-bench", ".venv-sdk", needs=("viam.services.mlmodel", "viam.services.vision", "ai_edge_litert", "PIL"))
    tflite_python = cases.venv_python(".venv-tflite-runtime", needs=("tflite_runtime.interpreter",))
    result["environments"] = {"sdk_python": sdk_python, "tflite_runtime_python": tflite_python}

    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        jpeg_path = cases.make_jpeg(Path(tmp))
        jpeg = jpeg_path.read_bytes()
        result["image"] = {"source": cases.SOURCE_PHOTO.name, "size": [640, 480], "bytes": len(jpeg)}

        cases.log("flat tensor encode/decode, 1M float32")
        result["flat_tensor_1m_float32"] = cases.flat_tensor(repeats=20 if args.quick else 50)
        cases.log("point clouds: 640x480 organised cloud (307,200 points), read + 3D objects")
        from bench.cases.point_clouds import point_clouds  # not in bench.cases: it also runs alone (python -m)

        result["point_clouds"] = point_clouds(10 if args.quick else 30)
        cases.log("module overhead (constant detector)")
        result["overhead"] = cases.overhead(cases.constant_detector(Path(tmp)), jpeg, 2 * n)
        cases.log("targets, interleaved: bare invoke / in-process / over the socket")
        result["paired"] = cases.paired(jpeg, n)
        cases.log("in-process pipeline")
        result["in_process"] = cases.in_process(jpeg, n)
        result["in_process"]["profile_top"] = cases.profile_in_process(jpeg, 50 if args.quick else 300)
        cases.log("model families: post-processing and GetDetections per layout")
        from bench.cases.families import families  # not in bench.cases: `python -m bench.cases.families` runs it alone

        result["families"] = families(n)
        cases.log("bare interpreter pool scaling (SSD, 1 vs 2 interpreters)")
        result["bare_parallel"] = cases.bare.parallel("ai-edge-litert", str(cases.SSD), seconds)
        result["ours"] = cases.ours(jpeg, n, memory_calls, seconds, start_repeats)
        if sdk_python:
            cases.log("official SDK client -> our module")
            result["sdk_client_ours"] = cases.sdk_client(sdk_python, "ours", jpeg_path, n, None)
            result["sdk_alternative"] = cases.sdk_alternative(sdk_python, jpeg, n, memory_calls, seconds, start_repeats)
            cases.log("official SDK client -> viam-sdk alternative")
            result["sdk_client_sdk_alternative"] = cases.sdk_client(sdk_python, "sdk_alternative", jpeg_path, n,
                                                                    sdk_python)
        else:
            result["sdk_alternative"] = {"skipped": "no SDK venv with viam-sdk, ai-edge-litert and Pillow"}
        cases.log("defaults (model_path only): one client and as many clients as cores, SSD and YOLOv8n")
        from bench.cases import defaults
        result["defaults"] = defaults.strip_samples(defaults.defaults(jpeg, n, seconds, 3 if args.quick else 8,
                                                                      sdk_python))
        if not args.skip_bare:
            result["bare"] = cases.bare_interpreters(bare_n, tflite_python)
        else:
            result["bare"] = {"ai-edge-litert": [cases.bare.measure("ai-edge-litert", str(cases.SSD), t, bare_n)
                                                 for t in (1, 2)]}

    result["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result["duration_s"] = round(time.time() - started, 1)
    table, checks = render(result)
    from bench.cases import defaults as defaults_case
    table += "\n\n" + defaults_case.render({"cores": result["defaults"].get("cores"), **result["defaults"]})
    result["targets"] = checks
    print(table)

    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = out_dir / f"bench-{stamp}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    (out_dir / "latest.md").write_text(table + "\n")
    print(f"\nJSON: {path}")
    if args.save:
        (HERE / "RESULTS.json").write_text(json.dumps(result, indent=1) + "\n")
        (HERE / "RESULTS.md").write_text(table + "\n")
        print(f"saved {HERE / 'RESULTS.json'} and {HERE / 'RESULTS.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
