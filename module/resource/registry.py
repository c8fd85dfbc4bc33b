"""The explicit registry: which (API, model) pairs this module serves, and how to parse, validate and build each.

``Ready`` builds its handler map from it; ValidateConfig and AddResource both go through the same ``parse_config``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from module.errors import NotFoundError
from module.parent import ParentClient
from module.resource.base import Dependencies, Resource
from module.resource.manager import ResourceManager
from module.resource.names import API, Model, ResourceName


@dataclass(frozen=True, slots=True)
class ResourceContext:
    """Everything a factory may use besides its config."""

    name: str
    dependencies: tuple[ResourceName, ...]
    resources: ResourceManager
    parent: Callable[[], ParentClient | None]
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("module"))


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One served model: its config parser, its implicit dependencies and its factory."""

    api: API
    model: Model
    parse_config: Callable[[Mapping[str, Any]], Any]
    dependencies: Callable[[Any], Dependencies]
    create: Callable[[ResourceContext, Any], Resource]
    description: str


@dataclass(frozen=True, slots=True)
class APISpec:
    """An API this module serves: its gRPC service name (for the handler map and reflection)."""

    api: API
    proto_service: str


class Registry:
    """(API, model) -> ModelSpec, fixed at construction; duplicate keys are a programming error."""

    def __init__(self, apis: Iterable[APISpec], models: Iterable[ModelSpec]) -> None:
        self.apis: dict[API, APISpec] = {}
        for api_spec in apis:
            if api_spec.api in self.apis:
                raise ValueError(f"API {api_spec.api} registered twice")
            self.apis[api_spec.api] = api_spec
        self._models: dict[tuple[API, Model], ModelSpec] = {}
        for spec in models:
            key = (spec.api, spec.model)
            if key in self._models:
                raise ValueError(f"model {spec.model} for API {spec.api} registered twice")
            if spec.api not in self.apis:
                raise ValueError(f"model {spec.model} uses API {spec.api}, which is not registered")
            self._models[key] = spec

    def lookup(self, api: str, model: str) -> ModelSpec:
        """The spec for a config's ``api`` and ``model`` strings, or NotFoundError listing what is served."""
        try:
            key = (API.parse(api), Model.parse(model))
        except ValueError as exc:
            raise NotFoundError(f"{exc}; this module serves {self.served()}") from None
        spec = self._models.get(key)
        if spec is None:
            raise NotFoundError(f"this module does not serve model {model!r} for API {api!r}; "
                                f"it serves {self.served()}")
        return spec

    def models_by_api(self) -> dict[API, list[Model]]:
        result: dict[API, list[Model]] = {api: [] for api in self.apis}
        for api, model in self._models:
            result[api].append(model)
        return result

    def served(self) -> str:
        return ", ".join(f"{model} ({api})" for api, model in self._models)
