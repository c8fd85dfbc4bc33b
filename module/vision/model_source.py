"""Where a vision service's mlmodel lives: in this module (called in-process, no serialisation) or behind the
parent (called over its MLModelService). Looked up on every call, so a reconfigured or re-added mlmodel is
picked up at once and a removed one gives a clear FAILED_PRECONDITION."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from module.errors import FailedPreconditionError, NotFoundError, UnavailableError
from module.mlmodel.remote import RemoteModel
from module.mlmodel.types import MLModel
from module.parent import ParentClient
from module.resource.manager import ResourceManager
from module.resource.names import MLMODEL_API

T = TypeVar("T")


class ModelSource:
    """Resolves the configured mlmodel name to a model object on each call."""

    def __init__(self, name: str, resources: ResourceManager, parent: Callable[[], ParentClient | None]) -> None:
        self.name = name
        self._resources = resources
        self._parent = parent
        self._remote: RemoteModel | None = None

    def get(self) -> MLModel:
        local = self._resources.find(MLMODEL_API, self.name)
        if local is not None:
            return local  # type: ignore[return-value]
        parent = self._parent()
        if parent is None:
            raise FailedPreconditionError(f"mlmodel {self.name!r} is not available: it is not (or no longer) in this "
                                          "module and there is no parent connection to reach it elsewhere")
        if self._remote is None or self._remote.parent is not parent:
            self._remote = RemoteModel(parent, self.name)
        return self._remote

    def location(self) -> str:
        return "in-process" if self._resources.find(MLMODEL_API, self.name) is not None else "parent"

    def call(self, model: MLModel, fn: Callable[[MLModel], T]) -> T:
        """Run ``fn`` on ``model``, turning 'not there' into FAILED_PRECONDITION for the vision caller."""
        try:
            return fn(model)
        except (NotFoundError, UnavailableError) as exc:
            if isinstance(model, RemoteModel):
                self._remote = None  # read its metadata again when it comes back
            raise FailedPreconditionError(f"mlmodel {self.name!r} is not available: {exc}") from None
