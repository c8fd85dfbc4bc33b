"""Shared by every case: test-data paths, the SSD settings, logging, the machine, venvs and the test photo."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import PIL.Image

REPO = Path(__file__).resolve().parents[2]
TESTDATA = REPO.parent / "shared" / "testdata"
SSD = TESTDATA / "models" / "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite"
COCO_LABELS = TESTDATA / "labels" / "coco_labels.txt"
SOURCE_PHOTO = TESTDATA / "images" / "cats_and_dogs.jpg"
NO_PARENT = {"VIAM_NO_MODULE_PARENT": "true"}
# One interpreter per core, one thread each: what the throughput target asks for; latency cases use the same.
SSD_ATTRS = {"model_path": str(SSD), "num_threads": 1, "pool_size": 2}
SDK_MLMODEL = ("rdk:service:mlmodel", "bench-sdk:mlmodel:tflite_cpu")
SDK_VISION = ("rdk:service:vision", "bench-sdk:vision:mlmodel")


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# --- environment -----------------------------------------------------------------------------------------------------

def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine() -> dict[str, Any]:
    cpu = ""
    flags: list[str] = []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and not cpu:
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = line.split(":", 1)[1].split()
    except OSError:
        pass
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    return {
        "git_commit": git("rev-parse", "--short", "HEAD"),
        "git_uncommitted_module_files": git("status", "--porcelain", "module", "bench").splitlines(),
        "cpu": cpu or platform.processor(), "cores": os.cpu_count(),
        "cpu_flags": sorted(f for f in flags if f in {"avx2", "avx512f", "avx512_vnni", "avx_vnni", "fma", "sse4_2"}),
        "platform": platform.platform(), "python": platform.python_version(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "packages": {d: _version(d) for d in ("ai-edge-litert", "tflite-runtime", "numpy", "pillow", "grpcio",
                                               "protobuf")},
    }


def venv_python(*names: str, needs: tuple[str, ...]) -> str | None:
    """The first of the repo's venvs that can import every module in ``needs``."""
    for name in names:
        python = REPO / name / "bin" / "python"
        if python.exists():
            probe = subprocess.run([str(python), "-c", "import " + ", ".join(needs)], capture_output=True)
            if probe.returncode == 0:
                return str(python)
    return None


def make_jpeg(out_dir: Path) -> Path:
    """A 640x480 JPEG (quality 90) made from a test-data photo with detectable animals."""
    path = out_dir / "frame_640x480.jpg"
    with PIL.Image.open(SOURCE_PHOTO) as img:
        img.convert("RGB").resize((640, 480), PIL.Image.Resampling.BILINEAR).save(path, "JPEG", quality=90)
    return path


def real_models() -> list[Path]:
    return sorted((TESTDATA / "models").glob("*.tflite"))
