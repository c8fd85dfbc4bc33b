#!/usr/bin/env bash
# Creates the module's Python environment (.venv next to this file) before its first start.
#
# viam-server runs this once per installed module version (meta.json "first_run"; marker
# <module dir>.first_run_succeeded), with no arguments, from its own working directory, outside the module's
# start-up window (first_run_timeout, default 1 hour). run.sh then only checks the stamp this script writes.
#
#   ./first_run.sh          the runtime environment (what viam-server needs)
#   ./first_run.sh dev      plus the test and benchmark tools (run.sh test|bench|soak call this)
#
# Offline: when the archive carries wheels/ (scripts/build_module.sh puts them there), everything is installed
# from them with --no-index: the robot needs no PyPI access. Without wheels/, or when none of them fits this
# Python, the packages come from the package index as usual.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"
VENV="${TFLITE_MODULE_VENV:-$HERE/.venv}"
PY="${PYTHON:-python3}"
KIND="${1:-base}"
WHEELS="$HERE/wheels"
LITERT_REQ="ai-edge-litert>=2.3.0"
FALLBACK_REQ=("tflite-runtime>=2.14.0" "numpy<2")  # tflite-runtime is built against NumPy 1.x

log() { echo "first_run: $*" >&2; }

case "$KIND" in
    base|dev) ;;
    *) echo "usage: $0 [base|dev]" >&2; exit 2 ;;
esac

# The stamp run.sh checks: the requirement files and setup.py of this copy (the archive carries them too).
stamp_for() { cat requirements*.txt setup.py 2>/dev/null | sha256sum | cut -c1-16; }
STAMP="$VENV/.installed-$KIND-$(stamp_for)"
if [ -f "$STAMP" ]; then
    exit 0
fi

if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
    log "needs Python 3.10 or newer as '$PY' (found: $("$PY" --version 2>&1 || echo none)); set PYTHON=/path/to/python3"
    exit 1
fi

if [ ! -x "$VENV/bin/python" ]; then
    log "creating $VENV with $("$PY" --version 2>&1)"
    if ! "$PY" -m venv "$VENV" 2>/dev/null; then
        # Debian/Ubuntu ship venv separately; viam-server usually runs as root on a robot.
        if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
            log "installing python3-venv with apt-get"
            apt-get install -y -qq python3-venv >&2 || { apt-get update -qq >&2 && apt-get install -y -qq python3-venv >&2; }
        fi
        rm -rf "$VENV"
        "$PY" -m venv "$VENV" || { log "cannot create a virtual environment: install python3-venv"; exit 1; }
    fi
fi
VPY="$VENV/bin/python"

REQS=(-r requirements.txt)
[ "$KIND" = dev ] && REQS=(-r requirements-dev.txt)

# pip_install SOURCE ARGS...: SOURCE "bundled" installs from wheels/ only, "index" from the configured index.
pip_install() {
    local source="$1"; shift
    if [ "$source" = bundled ]; then
        "$VPY" -m pip install -q --disable-pip-version-check --no-index --find-links "$WHEELS" "$@" >&2
    else
        "$VPY" -m pip install -q --disable-pip-version-check "$@" >&2
    fi
}

# One resolver run for the requirements and the interpreter: ai-edge-litert (XNNPACK with quantized kernels,
# about 9x faster on uint8/int8 models) where a wheel fits this machine, else tflite-runtime with NumPy < 2.
install_from() {
    local source="$1"
    if pip_install "$source" "${REQS[@]}" "$LITERT_REQ"; then
        return 0
    fi
    log "ai-edge-litert does not install here ($source); trying tflite-runtime with NumPy < 2"
    pip_install "$source" "${REQS[@]}" "${FALLBACK_REQ[@]}"
}

started=$SECONDS
if [ -d "$WHEELS" ] && compgen -G "$WHEELS/*.whl" >/dev/null; then
    log "installing from the $(find "$WHEELS" -name '*.whl' | wc -l) bundled wheels (no network)"
    pip_install bundled --upgrade pip || log "keeping the venv's own pip"
    if ! install_from bundled; then
        log "the bundled wheels do not fit $("$VPY" --version 2>&1) on $(uname -m); trying the package index"
        install_from index || { log "could not install the dependencies (offline? bundled wheels are for: $(cat "$WHEELS/PYTHONS" 2>/dev/null || echo unknown))"; exit 1; }
    fi
else
    log "no bundled wheels: installing from the package index"
    pip_install index --upgrade pip || log "keeping the venv's own pip"
    install_from index || { log "could not install the dependencies"; exit 1; }
fi

# The interpreter must import: a wheel that installs but does not load (glibc, CPU) is caught here, not at start.
if ! "$VPY" -c 'try:
    from ai_edge_litert.interpreter import Interpreter  # noqa: F401
except ImportError:
    from tflite_runtime.interpreter import Interpreter  # noqa: F401' >&2; then
    log "no TFLite interpreter package is importable in $VENV"
    exit 1
fi
rm -f "$VENV"/.installed-"$KIND"-*
touch "$STAMP"
log "environment ready in $((SECONDS - started)) s: $VENV"
