"""The detector world of the two fault suites (tests/support/detector_world.py), one module process per test file;
a file's ``LOG_LEVEL`` sets the module's log level. Files that define their own ``world`` (point clouds, SDK) keep it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.detector_world import World, detector_world


@pytest.fixture(scope="module")
def world(request: pytest.FixtureRequest) -> Iterator[World]:
    with detector_world(getattr(request.module, "LOG_LEVEL", "info")) as made:
        yield made


@pytest.fixture
def w(world: World) -> Iterator[World]:
    """The shared world, checked healthy before and restored after each test."""
    world.reset()
    yield world
    world.reset()
