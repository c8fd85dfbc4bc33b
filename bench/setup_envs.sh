#!/usr/bin/env bash
# Create the two extra venvs the benchmark compares against (the module's own .venv comes from ./run.sh):
#   .venv-tflite-runtime  tflite-runtime 2.14 (needs NumPy < 2, so it cannot share .venv)
#   .venv-sdk-bench       viam-sdk (pins protobuf 6) + ai-edge-litert + Pillow, for the SDK client and bench/sdk_alternative
# python -m bench skips what is missing and says so in its output.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY="${PYTHON:-python3}"
[ -x .venv-tflite-runtime/bin/python ] || "$PY" -m venv .venv-tflite-runtime
.venv-tflite-runtime/bin/python -m pip install -q -r requirements.txt "numpy<2" tflite-runtime==2.14.0
[ -x .venv-sdk-bench/bin/python ] || "$PY" -m venv .venv-sdk-bench
# viam-sdk imports `packaging` without declaring it.
.venv-sdk-bench/bin/python -m pip install -q viam-sdk ai-edge-litert Pillow packaging
