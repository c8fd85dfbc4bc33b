"""Location of the shared real-model test data (../shared/testdata beside the repository)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

TESTDATA: Path = Path(__file__).resolve().parents[2] / "shared" / "testdata"


def require_testdata(*relative: str) -> Path:
    """Return TESTDATA, skipping the test when it (or one of the ``relative`` paths in it) is missing.

    With the environment variable ``CI=true`` a missing file fails the test instead: CI must run these tests.
    """
    missing = [str(TESTDATA / r) for r in (relative or ("",)) if not (TESTDATA / r).exists()]
    if missing:
        message = f"test data not found: {', '.join(missing)}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return TESTDATA
