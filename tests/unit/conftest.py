"""Fixtures shared by the unit tests: the stand-in parent on a short socket path and a ParentClient to it."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from devkit.standin.launcher import short_tempdir
from devkit.standin.parent import FakeParent
from module.parent import ParentClient


@pytest.fixture
def parent() -> Iterator[FakeParent]:
    directory = short_tempdir()
    fake = FakeParent(os.path.join(directory, "parent.sock"))
    try:
        yield fake
    finally:
        fake.close()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def client(parent: FakeParent) -> Iterator[ParentClient]:
    connected = ParentClient(parent.address)
    try:
        yield connected
    finally:
        connected.close()
