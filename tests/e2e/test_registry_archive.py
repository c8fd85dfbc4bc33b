"""The registry archive, end to end: built by meta.json's build command, unpacked in an empty folder, installed by
first_run.sh with no package index (only the wheels in the archive), then started as viam-server starts it.

The wheels are downloaded once per requirements hash into a cache outside the repository
($XDG_CACHE_HOME/tflite-module/wheels, or ~/.cache/...), so later runs only copy them; a fresh machine downloads.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import PIL.Image
import pytest

from devkit.models import detector_model
from devkit.standin.launcher import REPO, ModuleProcess
from module.gen.service.vision.v1 import vision_pb2

THIS_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
IMAGE_SIZE = (100, 80)  # width, height
BOX = (0.1, 0.2, 0.5, 0.6)  # left, top, right, bottom as ratios of the image


def wheel_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tflite-module" / "wheels"


def offline_env(root: Path) -> dict[str, str]:
    """viam-server's environment for first_run, with pip cut off from every index and from pip's own config."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PIP_", "VIRTUAL_ENV"))}
    env.update(PIP_NO_INDEX="1", PIP_CONFIG_FILE=os.devnull, PYTHON=sys.executable,
               VIAM_MODULE_ROOT=str(root), VIAM_MODULE_NAME="tflite", VIAM_MODULE_DATA=str(root.parent / "data"))
    return env


@dataclass(frozen=True)
class Installed:
    root: Path
    archive: Path
    archive_bytes: int
    first_run_s: float
    first_run_log: str


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    work = tmp_path_factory.mktemp("registry")
    archive = work / "module.tar.gz"
    build = subprocess.run(
        [str(REPO / "scripts" / "build_module.sh"), str(archive)], cwd=REPO, capture_output=True, text=True,
        env={**os.environ, "WHEEL_PYTHONS": THIS_PYTHON, "WHEEL_CACHE": str(wheel_cache()),
             "BUILD_DIR": str(work / "build"), "PYTHON": sys.executable}, timeout=900)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]

    root = unpack(archive, work / "unpacked")
    started = time.monotonic()
    first_run = run_first_run(root)
    elapsed = time.monotonic() - started
    assert first_run.returncode == 0, first_run.stdout[-3000:] + first_run.stderr[-3000:]
    yield Installed(root, archive, archive.stat().st_size, elapsed, first_run.stderr)


def unpack(archive: Path, root: Path) -> Path:
    """Into an empty folder, like viam-server's packages/data/module/<id>-<version>-<arch>."""
    root.mkdir()
    (root.parent / "data").mkdir(exist_ok=True)
    with tarfile.open(archive) as tar:
        if sys.version_info >= (3, 12):
            tar.extractall(root, filter="data")
        else:
            tar.extractall(root)
    return root


def run_first_run(root: Path) -> subprocess.CompletedProcess[str]:
    """Like viam-server: the script's absolute path, no arguments, viam-server's own working directory."""
    return subprocess.run([str(root / "first_run.sh")], cwd="/", env=offline_env(root), capture_output=True, text=True,
                          timeout=900)


def test_archive_holds_the_runtime_and_this_platforms_wheels(installed: Installed) -> None:
    root = installed.root
    for name in ("meta.json", "run.sh", "first_run.sh", "requirements.txt", "LICENSE", "module/__main__.py"):
        assert (root / name).is_file(), name
    assert os.access(root / "run.sh", os.X_OK) and os.access(root / "first_run.sh", os.X_OK)
    wheels = {path.name.split("-")[0].lower() for path in (root / "wheels").glob("*.whl")}
    assert {"grpcio", "numpy", "pillow", "protobuf", "ai_edge_litert", "pip"} <= wheels
    if sys.version_info < (3, 12):  # the fallback interpreter has wheels up to CPython 3.11
        assert "tflite_runtime" in wheels
    assert (root / "wheels" / "PYTHONS").read_text().split() == [THIS_PYTHON]
    assert "installing from the" in installed.first_run_log and "bundled wheels" in installed.first_run_log
    again = run_first_run(root)  # viam-server runs it again when its marker is lost: the stamp makes it a no-op
    assert again.returncode == 0 and again.stderr == ""
    print(f"\narchive {installed.archive_bytes / 1e6:.1f} MB (wheels for CPython {THIS_PYTHON}); "
          f"first_run offline {installed.first_run_s:.1f} s")


def png(size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    PIL.Image.new("RGB", size, (90, 140, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


def serve_a_detection(root: Path, model_dir: Path) -> float:
    """Start root/run.sh as viam-server does, check Ready against root/meta.json, add a detector, detect; returns
    the seconds from the start to Ready."""
    manifest = json.loads((root / "meta.json").read_text())
    served = {entry["api"]: entry["model"] for entry in manifest["models"]}
    model_file = model_dir / "detector.tflite"
    model_file.write_bytes(detector_model([BOX], [0], [0.9]))

    started = time.monotonic()
    process = ModuleProcess(executable=root / "run.sh", env={"VIAM_NO_MODULE_PARENT": "true"})
    try:
        process.wait_for_socket(timeout=60)
        reply = process.ready("/nonexistent/parent.sock")
        ready_s = time.monotonic() - started
        handlers = {f"{h.subtype.subtype.namespace}:{h.subtype.subtype.type}:{h.subtype.subtype.subtype}":
                    list(h.models) for h in reply.handlermap.handlers}
        assert handlers == {api: [model] for api, model in served.items()}

        mlmodel = ("rdk:service:mlmodel", served["rdk:service:mlmodel"])
        vision = ("rdk:service:vision", served["rdk:service:vision"])
        process.add("detector-model", mlmodel, {"model_path": str(model_file)})
        process.add("detector", vision, {"mlmodel_name": "detector-model"},
                    deps=("rdk:service:mlmodel/detector-model",))
        detections = process.vision.GetDetections(
            vision_pb2.GetDetectionsRequest(name="detector", image=png(IMAGE_SIZE), mime_type="image/png"),
            timeout=20).detections
        assert len(detections) == 1, process.log()[-3000:]
        found = detections[0]
        width, height = IMAGE_SIZE
        assert found.confidence == pytest.approx(0.9, abs=1e-6)
        assert (found.x_min, found.y_min, found.x_max, found.y_max) == (
            round(BOX[0] * width), round(BOX[1] * height), round(BOX[2] * width), round(BOX[3] * height))
        # run.sh exec'd the interpreter of the venv first_run created in the unpacked folder.
        command = Path(f"/proc/{process.proc.pid}/cmdline").read_bytes().split(b"\0")
        assert command[0].decode() == str(root / ".venv" / "bin" / "python")
    finally:
        process.close()
    return ready_s


def test_the_installed_archive_starts_like_viam_server_starts_it_and_serves_a_detection(installed: Installed,
                                                                                        tmp_path: Path) -> None:
    ready_s = serve_a_detection(installed.root, tmp_path)
    print(f"\nstart -> Ready after first_run: {ready_s:.2f} s")


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="tflite-runtime has wheels up to CPython 3.11 only")
def test_without_an_ai_edge_litert_wheel_first_run_installs_tflite_runtime_with_numpy_1(installed: Installed,
                                                                                       tmp_path: Path) -> None:
    root = unpack(installed.archive, tmp_path / "unpacked")
    for wheel in (root / "wheels").glob("ai_edge_litert-*.whl"):
        wheel.unlink()  # as on a robot where no ai-edge-litert wheel fits
    result = run_first_run(root)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "trying tflite-runtime with NumPy < 2" in result.stderr
    probe = subprocess.run([str(root / ".venv" / "bin" / "python"), "-c",
                            "import numpy, tflite_runtime.interpreter, importlib.util as u; "
                            "print(numpy.__version__, u.find_spec('ai_edge_litert') is None)"],
                           capture_output=True, text=True, timeout=60)
    version, no_litert = probe.stdout.split()
    assert int(version.split(".")[0]) < 2 and no_litert == "True"
    serve_a_detection(root, tmp_path)


def test_first_run_offline_without_a_fitting_wheel_fails_and_says_why(installed: Installed, tmp_path: Path) -> None:
    """A wheel missing from the archive on an offline robot: first_run fails (viam-server then does not start the
    module) and its output says which Pythons the archive carries; run.sh refuses the half-made environment."""
    root = unpack(installed.archive, tmp_path / "unpacked")
    for wheel in (root / "wheels").glob("grpcio-*.whl"):
        wheel.unlink()
    result = run_first_run(root)
    assert result.returncode == 1
    assert "do not fit" in result.stderr and "trying the package index" in result.stderr
    assert f"could not install the dependencies (offline? bundled wheels are for: {THIS_PYTHON})" in result.stderr
    start = subprocess.run([str(root / "run.sh"), str(tmp_path / "x.sock")], cwd=root, capture_output=True, text=True,
                           timeout=30, env=offline_env(root))
    assert start.returncode == 1 and "first_run.sh" in start.stderr


def test_run_sh_refuses_to_start_without_the_environment_and_names_first_run(tmp_path: Path) -> None:
    """As the module, run.sh installs nothing (no PyPI inside viam-server's start-up window): it says what to run."""
    for name in ("run.sh", "first_run.sh", "requirements.txt", "requirements-dev.txt", "setup.py"):
        shutil.copy2(REPO / name, tmp_path / name)
    result = subprocess.run([str(tmp_path / "run.sh"), str(tmp_path / "x.sock")], cwd=tmp_path, capture_output=True,
                            text=True, timeout=30, env={k: v for k, v in os.environ.items() if k != "TFLITE_MODULE_VENV"})
    assert result.returncode == 1
    assert f"run {tmp_path}/first_run.sh" in result.stderr
    assert not (tmp_path / ".venv").exists()


def test_run_sh_starts_a_stale_environment_with_a_warning(tmp_path: Path) -> None:
    """Requirement files changed since first_run.sh (a git pull in a clone): run.sh warns and still starts python."""
    for name in ("run.sh", "first_run.sh", "requirements.txt", "requirements-dev.txt", "setup.py", "meta.json"):
        shutil.copy2(REPO / name, tmp_path / name)
    shutil.copytree(REPO / "module", tmp_path / "module", ignore=shutil.ignore_patterns("__pycache__"))
    venv_bin = tmp_path / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "python").write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')  # the test interpreter stands in
    (venv_bin / "python").chmod(0o755)
    (tmp_path / ".venv" / ".installed-base-0123456789abcdef").touch()  # made for other requirement files
    result = subprocess.run([str(tmp_path / "run.sh"), "--help"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=60, env={k: v for k, v in os.environ.items() if k not in ("TFLITE_MODULE_VENV", "PYTHONPATH")})
    assert "warning: the requirement files changed since first_run.sh" in result.stderr
    assert result.returncode == 0 and "socket_path" in result.stdout  # python -m module ran (its --help)
