"""module/memory.py: with the thresholds raised, a call that allocates and frees megabytes stops faulting fresh
pages in on every repeat (counted page faults, not time)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from module.memory import keep_freed_memory

REPO = Path(__file__).resolve().parents[2]

# A worker thread (as in the server) allocates and frees what a YOLO-sized vision call does, 30 times after a warm-up.
_CALLS = """
import io, json, resource, sys, threading
import numpy as np
import PIL.Image
from module.memory import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else None
encoded = io.BytesIO()
PIL.Image.fromarray(np.random.default_rng(0).integers(0, 255, (480, 640, 3), np.uint8)).save(encoded, "JPEG")

def call():
    image = PIL.Image.open(io.BytesIO(encoded.getvalue()))
    image.load()                                            # the decoded frame
    canvas = np.full((640, 640, 3), 114, np.uint8)          # the letterbox
    canvas[80:560] = np.asarray(image)
    tensor = canvas.astype(np.float32) / 255.0              # a 4.9 MB float input
    output = np.ones((1, 84, 8400), np.float32)             # a 2.8 MB output copy
    candidates = output[0].T.copy()
    return float(tensor[0, 0, 0] + candidates[0, 0])

def in_a_thread(n):
    worker = threading.Thread(target=lambda: [call() for _ in range(n)])
    worker.start()
    worker.join()

in_a_thread(3)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
in_a_thread(30)
print(json.dumps({"kept": kept, "faults_per_call": (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 30}))
"""


def _faults(mode: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", _CALLS, mode], cwd=REPO, capture_output=True, text=True, check=True,
                         timeout=120)
    return json.loads(out.stdout)  # type: ignore[no-any-return]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_buffers_are_reused_instead_of_faulted_in_again() -> None:
    default, kept = _faults("default"), _faults("keep")
    assert kept["kept"] is True
    if default["faults_per_call"] < 500:
        pytest.skip(f"this libc reuses large blocks by itself ({default['faults_per_call']} faults per call)")
    assert kept["faults_per_call"] < default["faults_per_call"] / 20, (default, kept)


def test_it_says_whether_it_could() -> None:
    assert isinstance(keep_freed_memory(), bool)
