"""ResourceManager: exact (API, name) lookups, atomic replacement, and NOT_FOUND that lists what exists."""

from __future__ import annotations

import pytest

from module.errors import NotFoundError
from module.resource.manager import ResourceManager
from module.resource.names import MLMODEL_API, VISION_API


class Thing:
    def __init__(self, fail_close: bool = False) -> None:
        self.closed = False
        self.fail_close = fail_close

    def close(self) -> None:
        self.closed = True
        if self.fail_close:
            raise RuntimeError("close failed")


def test_lookup_is_exact_per_api() -> None:
    manager = ResourceManager()
    det = Thing()
    manager.put(MLMODEL_API, "det", det)
    assert manager.find(MLMODEL_API, "det") is det
    assert manager.find(VISION_API, "det") is None
    # "remote1:det" is a resource on another machine, never the local "det".
    assert manager.find(MLMODEL_API, "remote1:det") is None


def test_not_found_lists_existing_names() -> None:
    manager = ResourceManager()
    manager.put(VISION_API, "a", Thing())
    manager.put(VISION_API, "b", Thing())
    with pytest.raises(NotFoundError, match="'a', 'b'"):
        manager.get(VISION_API, "c")


def test_put_returns_the_replaced_resource_for_the_caller_to_close() -> None:
    manager = ResourceManager()
    old, new = Thing(), Thing()
    assert manager.put(VISION_API, "x", old) is None
    assert manager.put(VISION_API, "x", new) is old
    assert manager.get(VISION_API, "x") is new and not old.closed


def test_close_all_closes_every_resource_even_when_one_fails() -> None:
    manager = ResourceManager()
    things = [Thing(), Thing(fail_close=True), Thing()]
    for i, thing in enumerate(things):
        manager.put(VISION_API, str(i), thing)
    manager.close_all()
    assert all(t.closed for t in things)
    assert manager.names(VISION_API) == []
