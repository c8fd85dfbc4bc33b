"""Shared fixtures (a running module process, python -m module, no parent) and the test tiers.

tests/unit      pure helpers and in-process domain objects
tests/servicer  the gRPC servicers over a real socket (a module process without a parent)
tests/e2e       run.sh as viam-server launches it, the fake parent, faults, load, other venvs: marked ``slow`` here
tests/support   helpers and the scripts that run in other virtual environments
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devkit.standin.launcher import ModuleProcess


@pytest.fixture
def module_process() -> Iterator[ModuleProcess]:
    """A module with no parent (VIAM_NO_MODULE_PARENT=true), Ready already answered."""
    process = ModuleProcess(env={"VIAM_NO_MODULE_PARENT": "true"})
    try:
        process.wait_for_socket()
        process.ready("/nonexistent/parent.sock")
        yield process
    finally:
        process.close()


E2E = Path(__file__).parent / "e2e"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/e2e launches processes or builds environments: ``-m "not slow"`` skips it."""
    for item in items:
        if E2E in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.slow)
