"""The code base passes the project's static checks: ruff (ruff.toml) everywhere, mypy --strict (mypy.ini) on the
runtime package. Both are in requirements-dev.txt, so a missing one is a failure, not a skip."""

from __future__ import annotations

import subprocess
import sys

from devkit.standin.launcher import REPO


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True)


def test_ruff_is_clean() -> None:
    result = _run("ruff", "check", "--no-cache", ".")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_mypy_strict_passes_on_the_runtime_package() -> None:
    result = _run("mypy", "--no-incremental", "module")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
