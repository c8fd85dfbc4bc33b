#!/usr/bin/env bash
# The entrypoint viam-server runs:   ./run.sh <socket path> [--log-level=LEVEL] [--tcp-mode]
# and, for people:                   ./run.sh demo | ./run.sh local ... | ./run.sh test | ./run.sh bench | ./run.sh soak
#
# The first start creates .venv next to this file and installs the dependencies (about a minute); later starts
# only check a stamp file, so the module is up in well under the time viam-server allows.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CALLER_PWD="$PWD"
cd "$HERE"
VENV="${TFLITE_MODULE_VENV:-$HERE/.venv}"
PY="${PYTHON:-python3}"

log() { echo "run.sh: $*" >&2; }

stamp_for() { cat requirements*.txt setup.py | sha256sum | cut -c1-16; }

ensure_venv() {
    local extra="$1" stamp="$VENV/.installed-$1-$(stamp_for)"
    [ -f "$stamp" ] && return 0
    if [ ! -x "$VENV/bin/python" ]; then
        log "creating $VENV"
        if ! "$PY" -m venv "$VENV" 2>/dev/null; then
            # Debian/Ubuntu ship venv separately.
            if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
                apt-get update -qq && apt-get install -y -qq python3-venv >&2
            fi
            rm -rf "$VENV"; "$PY" -m venv "$VENV"
        fi
    fi
    log "installing dependencies into $VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip >&2
    if [ "$extra" = dev ]; then
        "$VENV/bin/python" -m pip install -q -r requirements-dev.txt >&2
    else
        "$VENV/bin/python" -m pip install -q -r requirements.txt >&2
    fi
    # ai-edge-litert (XNNPACK with quantized kernels: ~9x faster on uint8/int8 models) where a wheel exists,
    # else the older tflite-runtime (built against NumPy 1.x).
    "$VENV/bin/python" -m pip install -q "ai-edge-litert>=2.3.0" >&2 \
        || "$VENV/bin/python" -m pip install -q "tflite-runtime>=2.14.0" "numpy<2" >&2 \
        || { log "could not install a TFLite runtime"; exit 1; }
    rm -f "$VENV"/.installed-"$extra"-*
    touch "$stamp"
}

case "${1:-}" in
    test)
        shift
        ensure_venv dev
        exec "$VENV/bin/python" -m pytest "$@"
        ;;
    bench)
        shift
        ensure_venv dev
        bash bench/setup_envs.sh  # the comparison venvs (tflite-runtime, viam-sdk); quick once they exist
        exec "$VENV/bin/python" -u -m bench "$@"
        ;;
    soak)
        shift
        ensure_venv dev
        exec "$VENV/bin/python" -u -m bench.soak "$@"
        ;;
    demo|local)
        ensure_venv base
        # Paths on the command line (config, --images, --out) are relative to where the user ran run.sh.
        cd "$CALLER_PWD"
        PYTHONPATH="$HERE${PYTHONPATH:+:$PYTHONPATH}" exec "$VENV/bin/python" -u -m devkit.local "$@"
        ;;
    "")
        echo "usage: $0 <socket path> [--log-level=LEVEL] [--tcp-mode] | demo | local ... | test | bench | soak" >&2
        exit 2
        ;;
    *)
        ensure_venv base
        # exec: python must be the process viam-server signals (SIGTERM on stop).
        exec "$VENV/bin/python" -u -m module "$@"
        ;;
esac
