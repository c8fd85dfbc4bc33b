"""Where a vision service's mlmodel lives: in this module (called in-process, no serialisation) or behind the
parent (called over its MLModelService). Looked up on every call, so a reconfigured or re-added mlmodel is
picked up at once.

viam-server reconfigures an mlmodel by RemoveResource, then AddResource: a call that arrives in between waits for
the replacement (up to module/resource/manager.py's REPLACEMENT_WAIT_S, never past its own deadline). An mlmodel
that is not there is UNAVAILABLE, which clients retry: it is missing for now, not wrongly configured.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from module import call_state
from module.errors import NotFoundError, UnavailableError
from module.mlmodel.remote import RemoteModel
from module.mlmodel.types import MLModel
from module.parent import ParentClient
from module.resource.manager import ResourceManager
from module.resource.names import MLMODEL_API

T = TypeVar("T")
_LOG = logging.getLogger(__name__)


class ModelSource:
    """Resolves the configured mlmodel name to a model object on each call."""

    def __init__(self, name: str, resources: ResourceManager, parent: Callable[[], ParentClient | None],
                 logger: logging.Logger | None = None) -> None:
        self.name = name
        self._resources = resources
        self._parent = parent
        self._remote: RemoteModel | None = None
        self._log = logger or _LOG

    def get(self) -> MLModel:
        local = self._resources.find(MLMODEL_API, self.name) or self._wait_for_replacement()
        if local is not None:
            return local  # type: ignore[return-value]
        parent = self._parent()
        if parent is None:
            raise UnavailableError(f"mlmodel {self.name!r} is not available: {self._whereabouts()} and there is no "
                                   f"parent connection to reach it elsewhere{self._retry_hint()}")
        if self._remote is None or self._remote.parent is not parent:
            self._remote = RemoteModel(parent, self.name)
        return self._remote

    def _wait_for_replacement(self) -> object | None:
        removal = self._resources.removal(MLMODEL_API, self.name)
        if removal is None:
            return None
        left = call_state.time_left()
        self._log.debug("waiting for mlmodel %r, removed %.2f s ago, to be added back (up to %.1f s)", self.name,
                        removal.age(), removal.wait_left())
        return self._resources.wait_for_replacement(MLMODEL_API, self.name, None if left is None else left * 0.9)

    def _whereabouts(self) -> str:
        removal = self._resources.removal(MLMODEL_API, self.name)
        if removal is None:
            return "it is not in this module"
        return f"it was removed from this module {removal.age():.1f} s ago, has not been added back yet,"

    def _retry_hint(self) -> str:
        removed = self._resources.removal(MLMODEL_API, self.name) is not None
        return "; retry once viam-server has added it again (it does after a reconfiguration)" if removed else ""

    def location(self) -> str:
        return "in-process" if self._resources.find(MLMODEL_API, self.name) is not None else "parent"

    def call(self, model: MLModel, fn: Callable[[MLModel], T]) -> T:
        """Run ``fn`` on ``model``, turning 'not there' into UNAVAILABLE (retryable) for the vision caller."""
        try:
            return fn(model)
        except (NotFoundError, UnavailableError) as exc:
            if isinstance(model, RemoteModel):
                self._remote = None  # read its metadata again when it comes back
                raise UnavailableError(f"mlmodel {self.name!r} is not available: {self._whereabouts()} and the parent "
                                       f"could not reach it either ({exc}){self._retry_hint()}") from None
            raise
