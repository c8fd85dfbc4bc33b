"""Which TFLite interpreter package to use: ai-edge-litert (preferred) or tflite-runtime (fallback).

ai-edge-litert ships XNNPACK with its quantized (QS8/QU8) paths enabled; the last tflite-runtime wheel (2.14) does not,
which makes uint8/int8 models 7-14x slower on x86 (../shared/docs/style-and-performance.md B3).
"""

from __future__ import annotations

import importlib
import importlib.metadata
from dataclasses import dataclass
from typing import Any, Final

from module.errors import FailedPreconditionError

RUNTIME_CHOICES: Final = ("auto", "ai-edge-litert", "tflite-runtime")
_MODULES: Final = {"ai-edge-litert": "ai_edge_litert.interpreter", "tflite-runtime": "tflite_runtime.interpreter"}


@dataclass(frozen=True, slots=True)
class Runtime:
    """A loaded interpreter package."""

    name: str  # distribution name, e.g. "ai-edge-litert"
    version: str
    interpreter_class: Any


def _load(name: str) -> Runtime:
    module = importlib.import_module(_MODULES[name])
    try:
        version = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    numpy_version = importlib.metadata.version("numpy")
    if name == "tflite-runtime" and int(numpy_version.split(".")[0]) >= 2:
        # Its last release (2.14) is built against NumPy 1.x: it imports, then every Interpreter() raises a
        # SystemError ("_ARRAY_API not found"). Refuse it here so "auto" moves on and the message says why.
        raise ImportError(f"tflite-runtime {version} needs NumPy < 2 but NumPy {numpy_version} is installed")
    return Runtime(name=name, version=version, interpreter_class=module.Interpreter)


def load_runtime(choice: str = "auto") -> Runtime:
    """Import the requested runtime (one of RUNTIME_CHOICES, checked by the config); ``auto`` tries ai-edge-litert
    first, then tflite-runtime."""
    candidates = list(_MODULES) if choice == "auto" else [choice]
    errors = []
    for name in candidates:
        try:
            return _load(name)
        except ImportError as exc:
            errors.append(f"{name}: {exc}")
    raise FailedPreconditionError("no TFLite runtime could be imported (" + "; ".join(errors) +
                         "); install ai-edge-litert or tflite-runtime")
