"""Case 1: the bare interpreter invoke() in each runtime and thread count (the floor)."""

from __future__ import annotations

import json
import subprocess
from typing import Any

from bench import bare
from bench.cases.common import REPO, log, real_models


def bare_interpreters(n: int, tflite_runtime_python: str | None) -> dict[str, Any]:
    models = real_models()
    out: dict[str, Any] = {"ai-edge-litert": [], "tflite-runtime": []}
    for model in models:
        for threads in (1, 2):
            log(f"bare ai-edge-litert {model.name} x{threads}")
            out["ai-edge-litert"].append(bare.measure("ai-edge-litert", str(model), threads, n))
    if tflite_runtime_python is None:
        out["tflite-runtime"] = {"skipped": "no .venv-tflite-runtime with tflite-runtime (see bench/README)"}
        return out
    log("bare tflite-runtime (separate venv, NumPy < 2)")
    done = subprocess.run([tflite_runtime_python, str(REPO / "bench" / "bare.py"), "tflite-runtime", str(n), "1,2",
                           *map(str, models)], capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        out["tflite-runtime"] = {"error": done.stderr[-2000:]}
    else:
        report = json.loads(done.stdout)
        out["tflite-runtime"] = report["results"]
        out["tflite_runtime_env"] = {"python": report["python"], "numpy": report["numpy"]}
    return out
