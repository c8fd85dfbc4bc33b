"""Shared fixtures: a running module process (python -m module, no parent)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness import ModuleProcess


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
