#!/usr/bin/env bash
# The entrypoint viam-server runs:   ./run.sh <socket path> [--log-level=LEVEL] [--tcp-mode]
# and, for people:                   ./run.sh demo | ./run.sh local ... | ./run.sh test | ./run.sh bench | ./run.sh soak
#
# The environment (.venv next to this file) is created by first_run.sh: viam-server runs it before the first
# start of a registry or .tar.gz module (meta.json "first_run"); from a clone, run ./first_run.sh once. As the
# module, this script only checks the stamp first_run.sh wrote and execs python: no install inside viam-server's
# start-up window. The developer commands (test, demo, ...) call first_run.sh themselves.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CALLER_PWD="$PWD"
cd "$HERE"
VENV="${TFLITE_MODULE_VENV:-$HERE/.venv}"

log() { echo "run.sh: $*" >&2; }

stamp_for() { cat requirements*.txt setup.py 2>/dev/null | sha256sum | cut -c1-16; }

case "${1:-}" in
    test)
        shift
        "$HERE/first_run.sh" dev
        exec "$VENV/bin/python" -m pytest "$@"
        ;;
    bench)
        shift
        "$HERE/first_run.sh" dev
        bash bench/setup_envs.sh  # the comparison venvs (tflite-runtime, viam-sdk); quick once they exist
        exec "$VENV/bin/python" -u -m bench "$@"
        ;;
    soak)
        shift
        "$HERE/first_run.sh" dev
        exec "$VENV/bin/python" -u -m bench.soak "$@"
        ;;
    demo|local)
        "$HERE/first_run.sh" base
        # Paths on the command line (config, --images, --out) are relative to where the user ran run.sh.
        cd "$CALLER_PWD"
        PYTHONPATH="$HERE${PYTHONPATH:+:$PYTHONPATH}" exec "$VENV/bin/python" -u -m devkit.local "$@"
        ;;
    "")
        echo "usage: $0 <socket path> [--log-level=LEVEL] [--tcp-mode] | demo | local ... | test | bench | soak" >&2
        exit 2
        ;;
    *)
        # No environment at all: refuse, naming the fix. A stale one (requirement files changed since first_run.sh,
        # e.g. after a git pull in a clone): warn and start; a registry version is always installed afresh.
        stamp="$(stamp_for)"
        if [ ! -x "$VENV/bin/python" ] || ! compgen -G "$VENV/.installed-*" >/dev/null; then
            log "no environment in $VENV: run $HERE/first_run.sh (viam-server runs it itself for registry and"
            log ".tar.gz modules; a module configured as a run.sh path needs it run once)"
            exit 1
        fi
        if [ ! -f "$VENV/.installed-base-$stamp" ] && [ ! -f "$VENV/.installed-dev-$stamp" ]; then
            log "warning: the requirement files changed since first_run.sh made $VENV; run $HERE/first_run.sh again"
        fi
        # exec: python must be the process viam-server signals (SIGTERM on stop); -u: line by line to viam-server.
        exec "$VENV/bin/python" -u -m module "$@"
        ;;
esac
