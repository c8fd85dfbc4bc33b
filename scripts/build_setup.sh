#!/usr/bin/env bash
# meta.json build.setup: prepares this machine to build the module archive (viam module build local, or the
# registry's cloud build on each architecture's own machine). Needs python3 >= 3.10; creates build/tools, a venv
# whose up-to-date pip downloads the wheels (the system pip may be missing or too old for manylinux_2_28 tags).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
TOOLS="$ROOT/build/tools"

log() { echo "build_setup: $*" >&2; }

if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
    log "needs Python 3.10 or newer as '$PY'"; exit 1
fi
if [ ! -x "$TOOLS/bin/python" ]; then
    if ! "$PY" -m venv "$TOOLS" 2>/dev/null; then
        SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
        if command -v apt-get >/dev/null; then
            log "installing python3-venv"
            $SUDO apt-get update -qq && $SUDO apt-get install -y -qq python3-venv >&2
        fi
        rm -rf "$TOOLS"
        "$PY" -m venv "$TOOLS"
    fi
fi
"$TOOLS/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >&2
log "ready: $("$TOOLS/bin/python" -m pip --version)"
