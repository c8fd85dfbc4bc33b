"""The floor: a bare TFLite interpreter, in-process, no module code.

Importable (the main bench runs ai-edge-litert in its own process) and runnable as a script with any Python that
has NumPy and a TFLite runtime (the bench runs tflite-runtime 2.14 this way in ``.venv-tflite-runtime``, because it
needs NumPy < 2):  ``python bench/bare.py <runtime> <n> <threads,...> <model.tflite>...``  prints JSON.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stats import summary, time_calls  # noqa: E402  (script and package use)

MODULES = {"ai-edge-litert": "ai_edge_litert.interpreter", "tflite-runtime": "tflite_runtime.interpreter"}


def interpreter_class(runtime: str):
    return importlib.import_module(MODULES[runtime]).Interpreter


def runtime_version(runtime: str) -> str:
    try:
        return importlib.metadata.version(runtime)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def measure(runtime: str, model_path: str, threads: int, n: int, budget_s: float = 4.0) -> dict:
    """Median/percentiles of ``invoke()`` alone, and of set_tensor + invoke + get_tensor (every output).

    ``n`` samples, fewer (at least 10) when they would take longer than ``budget_s`` (slow runtime/model pairs).
    """
    cls = interpreter_class(runtime)
    started = time.perf_counter()
    interp = cls(model_path=model_path, num_threads=threads)
    interp.allocate_tensors()
    load_ms = (time.perf_counter() - started) * 1000
    rng = np.random.default_rng(0)
    inputs = []
    for d in interp.get_input_details():
        if np.issubdtype(d["dtype"], np.integer):
            info = np.iinfo(d["dtype"])
            arr = rng.integers(info.min, info.max, size=d["shape"], endpoint=True).astype(d["dtype"])
        else:
            arr = rng.uniform(-1, 1, size=d["shape"]).astype(d["dtype"])
        inputs.append((d["index"], arr))
        interp.set_tensor(d["index"], arr)
    outputs = [d["index"] for d in interp.get_output_details()]

    def io_call() -> None:
        for index, arr in inputs:
            interp.set_tensor(index, arr)
        interp.invoke()
        for index in outputs:
            interp.get_tensor(index)

    first = time.perf_counter()
    interp.invoke()
    first_ms = (time.perf_counter() - first) * 1000
    interp.invoke()
    n = max(10, min(n, int(budget_s * 1000 / max((time.perf_counter() - first) * 500, 0.01))))
    invoke = summary(time_calls(interp.invoke, n, warmup=5))
    with_io = summary(time_calls(io_call, max(n // 2, 10), warmup=2))
    return {"runtime": runtime, "version": runtime_version(runtime), "model": os.path.basename(model_path),
            "threads": threads, "load_ms": round(load_ms, 1), "first_invoke_ms": round(first_ms, 2),
            "invoke_ms": invoke, "set_invoke_get_ms": with_io,
            "inputs": [[int(x) for x in a.shape] + [str(a.dtype)] for _, a in inputs]}


def parallel(runtime: str, model_path: str, seconds: float) -> dict:
    """invoke()/s with one interpreter in one thread vs two interpreters in two threads (num_threads=1 each):
    the hardware ceiling for the module's 2-client throughput (invoke releases the GIL)."""
    import threading

    cls = interpreter_class(runtime)

    def rate(workers: int) -> float:
        interps = []
        for _ in range(workers):
            interp = cls(model_path=model_path, num_threads=1)
            interp.allocate_tensors()
            interp.invoke()
            interps.append(interp)
        counts = [0] * workers
        stop = time.perf_counter() + seconds

        def loop(i: int) -> None:
            while time.perf_counter() < stop:
                interps[i].invoke()
                counts[i] += 1

        threads = [threading.Thread(target=loop, args=(i,)) for i in range(workers)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return sum(counts) / (time.perf_counter() - started)

    one, two = rate(1), rate(2)
    return {"runtime": runtime, "model": os.path.basename(model_path), "invokes_per_s_1_thread": round(one, 2),
            "invokes_per_s_2_threads": round(two, 2), "scaling": round(two / one, 3)}


def main(argv: list[str]) -> None:
    runtime, n, threads, models = argv[0], int(argv[1]), [int(t) for t in argv[2].split(",")], argv[3:]
    results = []
    for model in models:
        for t in threads:
            try:
                results.append(measure(runtime, model, t, n))
            except Exception as exc:  # noqa: BLE001 - report and go on with the other models
                results.append({"runtime": runtime, "model": os.path.basename(model), "threads": t,
                                "error": f"{type(exc).__name__}: {exc}"})
    print(json.dumps({"numpy": np.__version__, "python": sys.version.split()[0], "results": results}))


if __name__ == "__main__":
    main(sys.argv[1:])
