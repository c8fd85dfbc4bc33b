#!/usr/bin/env bash
# meta.json build.build: the module archive for THIS machine's platform (the registry's cloud build runs it on a
# linux/amd64 and on a linux/arm64 machine; `viam module build local` or `make module` on yours).
#
#   scripts/build_module.sh [OUT]          default OUT: dist/module.tar.gz (meta.json build.path)
#
# The archive holds the runtime code, meta.json, run.sh, first_run.sh, the requirement files, LICENSE, README.md
# and wheels/: every wheel the module needs (the requirements, ai-edge-litert, and tflite-runtime + NumPy < 2
# where they exist) for this platform and each CPython in WHEEL_PYTHONS, so first_run.sh installs with no network.
#
# Environment:
#   WHEEL_PYTHONS  CPython versions to bundle wheels for (default "3.10 3.11 3.12 3.13"); "none" for no wheels
#                  (first_run.sh then installs from PyPI on the robot)
#   BUILD_DIR      scratch directory (default build/): the staged archive tree and downloaded wheels
#   WHEEL_CACHE    a directory to keep downloaded wheels in between builds, keyed by the requirements, the
#                  platform and the Python version (the tests use it; a fresh directory just downloads)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUT="${1:-dist/module.tar.gz}"
case "$OUT" in /*) ;; *) OUT="$ROOT/$OUT" ;; esac
PYTHONS="${WHEEL_PYTHONS:-3.10 3.11 3.12 3.13}"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
STAGE="$BUILD_DIR/stage"
PIP_PY="$ROOT/build/tools/bin/python"  # from build_setup.sh
[ -x "$PIP_PY" ] || PIP_PY="${PYTHON:-python3}"
LITERT_REQ="ai-edge-litert>=2.3.0"
FALLBACK_REQS=("tflite-runtime>=2.14.0" "numpy<2")

log() { echo "build_module: $*" >&2; }

machine="$(uname -m)"
case "$machine" in
    x86_64|amd64) arch=amd64 ;;
    aarch64|arm64) arch=arm64 ;;
    *) arch="$machine" ;;
esac
if [ -n "${VIAM_BUILD_ARCH:-}" ] && [ "$VIAM_BUILD_ARCH" != "$arch" ]; then
    log "asked for linux/$VIAM_BUILD_ARCH on a $machine machine: the wheels are this machine's; build on the target"
    exit 1
fi

rm -rf "$STAGE"
mkdir -p "$STAGE" "$(dirname "$OUT")"
# The runtime only: what viam-server runs (module/ without caches), its manifest, scripts and licence.
cp meta.json run.sh first_run.sh requirements.txt requirements-dev.txt setup.py LICENSE README.md "$STAGE/"
tar -cf - --exclude='__pycache__' --exclude='*.pyc' module | tar -xf - -C "$STAGE"

# download_wheels DEST PYVER REQS...: this platform's wheels for CPython PYVER.
download_wheels() {
    local dest="$1" pyver="$2"; shift 2
    "$PIP_PY" -m pip download -q --disable-pip-version-check --only-binary=:all: --python-version "$pyver" \
        -d "$dest" "$@" 2>&1 | grep -v "^WARNING: Location" >&2
    return "${PIPESTATUS[0]}"
}

reqs_hash="$( { cat requirements.txt; echo "$LITERT_REQ ${FALLBACK_REQS[*]}"; } | sha256sum | cut -c1-12)"
bundled=()
if [ "$PYTHONS" != none ]; then
    mkdir -p "$STAGE/wheels"
    for pyver in $PYTHONS; do
        key="cp${pyver/./}-linux-$arch-$reqs_hash"
        if [ -n "${WHEEL_CACHE:-}" ]; then
            dest="$WHEEL_CACHE/$key"
        else
            dest="$BUILD_DIR/wheels/$key"
        fi
        if [ ! -f "$dest/.complete" ]; then
            # Downloaded beside the cache entry and renamed into place: a concurrent or interrupted build never
            # sees a half-filled set.
            partial="$dest.partial.$$"
            rm -rf "$partial"; mkdir -p "$partial"
            log "downloading wheels for CPython $pyver on linux/$arch"
            if ! download_wheels "$partial" "$pyver" -r requirements.txt "$LITERT_REQ" pip; then
                log "no complete wheel set for CPython $pyver on linux/$arch: skipped (first_run.sh would use PyPI there)"
                rm -rf "$partial"
                continue
            fi
            # The fallback interpreter: tflite-runtime has wheels for CPython <= 3.11 only.
            download_wheels "$partial" "$pyver" "${FALLBACK_REQS[@]}" 2>/dev/null \
                || log "no tflite-runtime wheel for CPython $pyver on linux/$arch (ai-edge-litert only)"
            touch "$partial/.complete"
            if [ -f "$dest/.complete" ]; then
                rm -rf "$partial"  # another build got there first: use its set
            else
                rm -rf "$dest"; mv "$partial" "$dest"
            fi
        fi
        touch "$dest"  # last used: sets unused for 14 days are pruned below
        cp "$dest"/*.whl "$STAGE/wheels/"
        bundled+=("$pyver")
    done
    if [ -n "${WHEEL_CACHE:-}" ]; then
        find "$WHEEL_CACHE" -mindepth 1 -maxdepth 1 -type d -name 'cp*-linux-*' -mtime +14 -exec rm -rf {} + || true
    fi
    [ "${#bundled[@]}" -gt 0 ] || { log "no wheels could be downloaded for any of: $PYTHONS"; exit 1; }
    printf '%s\n' "${bundled[@]}" > "$STAGE/wheels/PYTHONS"
fi

rm -f "$OUT"
tar -czf "$OUT" -C "$STAGE" $(cd "$STAGE" && ls -A)
size="$(du -h "$OUT" | cut -f1)"
log "wrote $OUT ($size, linux/$arch, wheels for CPython: ${bundled[*]:-none})"
