"""The code base passes the project's lint settings (ruff.toml): unused imports, undefined names, bug patterns."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.harness import REPO


def test_ruff_is_clean() -> None:
    if shutil.which("ruff") is None and subprocess.run([sys.executable, "-m", "ruff", "--version"],
                                                       capture_output=True).returncode != 0:
        pytest.fail("ruff is not installed (it is in requirements-dev.txt)")
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=REPO, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
