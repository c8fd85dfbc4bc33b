"""The fallback runtime: tflite-runtime 2.14 gives the reference results and agrees with ai-edge-litert.

tflite-runtime 2.14 (its last release) needs NumPy < 2, so it runs in its own venv, ``.venv-tflite-runtime/`` in
the repository (git-ignored), made once and reused while its stamp matches requirements.txt. The same script
(tests/support/tflite_runtime_script.py) runs there and in process with ai-edge-litert.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from devkit.testdata import TESTDATA, require_testdata
from module.mlmodel.runtime import load_runtime
from tests.support import tflite_runtime_script as script

pytestmark = pytest.mark.timeout(1800)

REPO = Path(__file__).resolve().parents[2]
VENV = REPO / ".venv-tflite-runtime"
PINS = ("numpy<2", "tflite-runtime==2.14.0", "pytest>=8", "pytest-timeout>=2.3", "hypothesis>=6.100")
TOLERANCE = 0.02
# ai-edge-litert runs uint8/int8 models on XNNPACK's quantized kernels, tflite-runtime 2.14 on its built-in ones;
# they round differently. Measured on these models: up to 14 quantization steps of 1/256 (mobilenet_v2 quant on
# pets.jpg: 0.5469 vs 0.6016); top-1 never differs. Float models agree to 1e-6.
QUANTIZED_TOLERANCE = 0.06


def _fail_or_skip(message: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def _stamp() -> Path:
    digest = hashlib.sha256((REPO / "requirements.txt").read_bytes() + " ".join(PINS).encode()).hexdigest()[:16]
    return VENV / f".tests-installed-{digest}"


@pytest.fixture(scope="session")
def tflite_runtime_python() -> Path:
    """The venv's python, created (or updated) only when its stamp is missing; skip (fail under CI) if impossible."""
    python = VENV / "bin" / "python"
    lock_path = Path(tempfile.gettempdir()) / f"tflite-runtime-venv-{hashlib.sha256(bytes(VENV)).hexdigest()[:12]}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two pytest runs must not build the same venv at once
        if not (_stamp().exists() and python.exists()):
            steps = [[sys.executable, "-m", "venv", str(VENV)]] if not python.exists() else []
            steps.append([str(python), "-m", "pip", "install", "-q", "-r", str(REPO / "requirements.txt"), *PINS])
            for step in steps:
                try:
                    done = subprocess.run(step, cwd=REPO, capture_output=True, text=True, timeout=1200)
                except (OSError, subprocess.TimeoutExpired) as exc:
                    _fail_or_skip(f"cannot create {VENV}: {exc}")
                if done.returncode != 0:
                    _fail_or_skip(f"cannot create {VENV}: {' '.join(step)} exited {done.returncode}:\n"
                                  f"{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
            for old in VENV.glob(".tests-installed-*"):
                old.unlink()
            _stamp().touch()
    return python


@pytest.fixture(scope="session")
def with_tflite_runtime(tflite_runtime_python: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    require_testdata("models", "images")
    env = {**os.environ, "PYTHONPATH": str(REPO), "VIAM_MODULE_DATA": str(tmp_path_factory.mktemp("tflite-runtime"))}
    done = subprocess.run([str(tflite_runtime_python), "-m", "tests.support.tflite_runtime_script", str(TESTDATA),
                           "tflite-runtime"], cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    data: dict[str, Any] = json.loads(done.stdout)
    assert data["numpy"].startswith("1."), data["numpy"]
    return data["models"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def with_litert(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    require_testdata("models", "images")
    if load_runtime("auto").name != "ai-edge-litert":
        _fail_or_skip("ai-edge-litert is not installed in this environment")
    saved = os.environ.get("VIAM_MODULE_DATA")
    os.environ["VIAM_MODULE_DATA"] = str(tmp_path_factory.mktemp("litert"))
    try:
        yield script.results(TESTDATA, "ai-edge-litert")
    finally:
        if saved is None:
            del os.environ["VIAM_MODULE_DATA"]
        else:
            os.environ["VIAM_MODULE_DATA"] = saved


@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    path = require_testdata("reference_results.json") / "reference_results.json"
    return json.loads(path.read_text())["models"]  # type: ignore[no-any-return]


Detection = tuple[int, float, list[float]]


def _matches(a: Detection, b: Detection) -> bool:
    return a[0] == b[0] and abs(a[1] - b[1]) <= TOLERANCE and max(abs(x - y) for x, y in zip(a[2], b[2])) <= TOLERANCE


def _same_detections(got: list[Detection], want: list[Detection]) -> None:
    """Every detection clearly above 0.5 in one list is in the other (near the cut either side is fine)."""
    for one, other in ((got, want), (want, got)):
        for detection in one:
            if detection[1] >= 0.5 + TOLERANCE:
                assert any(_matches(detection, d) for d in other), (detection, other)


def _detections(entry: dict[str, Any]) -> list[Detection]:
    return [(c, s, b) for c, s, b in entry["detections"]]


def test_tflite_runtime_is_the_runtime_used(with_tflite_runtime: dict[str, Any]) -> None:
    for name in script.CLASSIFIERS + script.DETECTORS + script.RAW:
        assert (with_tflite_runtime[name]["runtime"], with_tflite_runtime[name]["runtime_version"]) == (
            "tflite-runtime", "2.14.0")


@pytest.mark.parametrize("name", script.CLASSIFIERS)
def test_tflite_runtime_classifiers_match_reference(name: str, with_tflite_runtime: dict[str, Any],
                                                    reference: dict[str, Any]) -> None:
    for image in script.IMAGES:
        scores = with_tflite_runtime[name]["images"][image]["scores"]
        want = reference[name]["results"][image]
        assert int(np.argmax(scores)) == want[0]["index"], image
        for entry in want:
            assert scores[entry["index"]] == pytest.approx(entry["score"], abs=TOLERANCE), (image, entry)


@pytest.mark.parametrize("name", script.DETECTORS)
def test_tflite_runtime_detections_match_reference(name: str, with_tflite_runtime: dict[str, Any],
                                                   reference: dict[str, Any]) -> None:
    for image in script.IMAGES:
        got = _detections(with_tflite_runtime[name]["images"][image])
        want = reference[name]["results"][image]
        assert len(got) == want["num_detections"]
        _same_detections(got, [(d["class_id"], d["score"], d["box"]) for d in want["detections_ge_0.5"]])


@pytest.mark.parametrize("name", script.CLASSIFIERS + script.DETECTORS + script.RAW)
def test_metadata_is_the_same_in_both_runtimes(name: str, with_tflite_runtime: dict[str, Any],
                                               with_litert: dict[str, Any], reference: dict[str, Any]) -> None:
    a, b = with_tflite_runtime[name], with_litert[name]
    for key in ("type", "inputs", "outputs", "box_order", "labels_file_bytes"):
        assert a[key] == b[key], key
    assert [abs(d) for d in a["inputs"][0][2]] == reference[name]["inputs"][0]["shape"]


@pytest.mark.parametrize("name", script.CLASSIFIERS)
def test_classifiers_agree_with_litert(name: str, with_tflite_runtime: dict[str, Any],
                                       with_litert: dict[str, Any]) -> None:
    quantized = with_tflite_runtime[name]["inputs"][0][1] != "float32"
    tolerance = QUANTIZED_TOLERANCE if quantized else TOLERANCE
    for image in script.IMAGES:
        a = np.array(with_tflite_runtime[name]["images"][image]["scores"])
        b = np.array(with_litert[name]["images"][image]["scores"])
        assert int(a.argmax()) == int(b.argmax()), image
        np.testing.assert_allclose(a, b, rtol=0, atol=tolerance, err_msg=image)


@pytest.mark.parametrize("name", script.DETECTORS)
def test_detections_agree_with_litert(name: str, with_tflite_runtime: dict[str, Any],
                                      with_litert: dict[str, Any]) -> None:
    for image in script.IMAGES:
        got, want = (_detections(r[name]["images"][image]) for r in (with_tflite_runtime, with_litert))
        assert got[0][0] == want[0][0], image  # same top class
        _same_detections(got, want)


def test_raw_float_detector_agrees_with_litert(with_tflite_runtime: dict[str, Any],
                                               with_litert: dict[str, Any]) -> None:
    (name,) = script.RAW
    for image in script.IMAGES:
        np.testing.assert_allclose(with_tflite_runtime[name]["images"][image]["anchor_scores"],
                                   with_litert[name]["images"][image]["anchor_scores"], rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize(("name", "detail"), [("invalid/person_detect.tflite", "quantized_dimension"),
                                              ("invalid/model_invoking_error.tflite", "fake-op-double")])
def test_invalid_models_fail_cleanly_in_both(name: str, detail: str, with_tflite_runtime: dict[str, Any],
                                             with_litert: dict[str, Any]) -> None:
    for runtime, results in (("tflite-runtime", with_tflite_runtime), ("ai-edge-litert", with_litert)):
        assert results[name]["error"] == "ModelLoadError"
        assert f"loaded by {runtime}" in results[name]["message"] and detail in results[name]["message"]


# Unit tests that check the development tools (ruff, mypy, grpcio-tools), not the module: not installed in that venv.
_TOOLING_TESTS = ("tests/unit/test_lint.py", "tests/unit/test_protos.py")
# The only skips allowed there: atheris (a fuzzing extra), and the test of tflite-runtime *failing* under NumPy 2.
_ALLOWED_SKIPS = ("atheris", "NumPy 1.x: tflite-runtime works here")


def test_the_unit_suite_passes_on_numpy_1_with_tflite_runtime(tflite_runtime_python: Path) -> None:
    """The whole unit suite (vision, mlmodel, resource, dev kit: every synthetic model in each dtype too) in the
    NumPy 1.26 + tflite-runtime 2.14 venv: what run.sh installs where ai-edge-litert has no wheel. Before, np.strings
    (NumPy >= 2 only) made every call with label_confidences or allowed_labels INTERNAL there, and a model file cut
    short killed the process (tflite-runtime does not verify flatbuffers)."""
    done = subprocess.run([str(tflite_runtime_python), "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                           "-m", "not slow", "tests/unit", *(f"--ignore={t}" for t in _TOOLING_TESTS)],
                          cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    skips = [line for line in done.stdout.splitlines() if line.startswith("SKIPPED")]
    assert all(any(reason in line for reason in _ALLOWED_SKIPS) for line in skips), skips
    passed = int(re.search(r"(\d+) passed", done.stdout).group(1))  # type: ignore[union-attr]
    assert passed > 900, done.stdout[-2000:]
    probe = subprocess.run([str(tflite_runtime_python), "-c", "import numpy; from module.mlmodel.runtime import "
                            "load_runtime; print(numpy.__version__, load_runtime('auto').name)"],
                           cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
                           timeout=120)
    numpy_version, runtime = probe.stdout.split()
    assert numpy_version.startswith("1.") and runtime == "tflite-runtime", probe.stdout + probe.stderr
