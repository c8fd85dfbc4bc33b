"""The module lifecycle: Ready, ValidateConfig, Add/Reconfigure/RemoveResource, and shutdown.

Owns the parent connection and the resources. Builds happen outside every lock; the swap into service is atomic,
so calls in flight finish on the resource they started on.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from module.errors import ConfigError, NotFoundError
from module.logs import level_from_arg, resource_logger_name
from module.parent import ParentClient
from module.resource.base import Dependencies
from module.resource.manager import ResourceManager, close_quietly
from module.resource.names import API, ResourceName
from module.resource.registry import Registry, ResourceContext

_LOG = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ResourceConfig:
    """The parts of a ComponentConfig the lifecycle uses (attributes already turned into Python values)."""

    name: str
    api: str
    model: str
    attributes: Mapping[str, Any]
    log_level: str = ""


class Lifecycle:
    """Everything ModuleService does, without the wire."""

    def __init__(self, registry: Registry, *, tcp: bool = False,
                 on_parent: Callable[[ParentClient], None] | None = None) -> None:
        self.registry = registry
        self.resources = ResourceManager()
        self._tcp = tcp
        self._on_parent = on_parent
        self._parent: ParentClient | None = None
        self._parent_lock = threading.Lock()
        self._name_locks: dict[tuple[API, str], threading.Lock] = {}
        self._name_locks_guard = threading.Lock()

    # --- Ready ---------------------------------------------------------------------------------------------------

    def ready(self, parent_address: str) -> dict[API, list[str]]:
        """Connect to the parent, then return the served models per API.

        Ready may be called many times: viam-server polls it at start-up, and calls it again after it restarted.
        A repeated Ready keeps a healthy connection (one connection, however often Ready comes). After calls failed
        to reach the parent (viam-server was away: grpc's reconnect backoff would keep failing camera reads for
        seconds after it came back), it re-dials the parent at once (ParentClient.reconnect) and checks it.
        """
        if os.environ.get("VIAM_NO_MODULE_PARENT", "").lower() != "true" and parent_address:
            with self._parent_lock:
                if self._parent is not None:
                    if self._parent.address == parent_address and self._parent.healthy():
                        return self._served()
                    self._parent.reconnect(parent_address)
                    self._parent.check()
                    _LOG.info("reconnected to the parent at %s", parent_address)
                else:
                    parent = ParentClient(parent_address, tcp=self._tcp)
                    try:
                        parent.check()
                    except Exception:
                        parent.close()
                        raise
                    self._parent = parent
                    _LOG.info("connected to the parent at %s", parent_address)
                    if self._on_parent:
                        self._on_parent(parent)
        return self._served()

    def _served(self) -> dict[API, list[str]]:
        return {api: [str(m) for m in models] for api, models in self.registry.models_by_api().items()}

    def parent(self) -> ParentClient | None:
        return self._parent

    # --- configs -------------------------------------------------------------------------------------------------

    def validate(self, config: ResourceConfig) -> Dependencies:
        spec = self.registry.lookup(config.api, config.model)
        return spec.dependencies(self._parse(spec, config))

    def add(self, config: ResourceConfig, dependencies: Iterable[str]) -> None:
        """Build the resource and put it into service, replacing (then closing) any same-named one."""
        spec = self.registry.lookup(config.api, config.model)
        parsed = self._parse(spec, config)
        deps = tuple(_parse_dependency(d) for d in dependencies)
        logger = logging.getLogger(resource_logger_name(str(spec.api), config.name))
        if config.log_level:
            logger.setLevel(level_from_arg(config.log_level))
        context = ResourceContext(name=config.name, dependencies=deps, resources=self.resources,
                                  parent=self.parent, logger=logger)
        with self._name_lock(spec.api, config.name):
            resource = spec.create(context, parsed)  # load, allocate, warm up: the old one keeps serving meanwhile
            old = self.resources.put(spec.api, config.name, resource)
        if old is not None:
            close_quietly(old, f"{spec.api}/{config.name}")
        _LOG.info("%s %s/%s (%s)", "replaced" if old else "added", spec.api, config.name, spec.model)

    def reconfigure(self, config: ResourceConfig, dependencies: Iterable[str]) -> None:
        """Older viam-servers reconfigure in place: build the new one fully, then swap. On failure the old one stays."""
        self.add(config, dependencies)

    def remove(self, full_name: str) -> None:
        try:
            name = ResourceName.parse(full_name)
        except ValueError as exc:
            raise NotFoundError(str(exc)) from None
        with self._name_lock(name.api, name.name):
            resource = self.resources.pop(name.api, name.name)
        if resource is None:
            raise NotFoundError(f"no resource {full_name!r} in this module")
        close_quietly(resource, full_name)
        _LOG.info("removed %s", full_name)

    def close(self) -> None:
        """Close every resource, then the parent connection."""
        self.resources.close_all()
        with self._parent_lock:
            if self._parent is not None:
                self._parent.close()
                self._parent = None

    # --- helpers -------------------------------------------------------------------------------------------------

    @staticmethod
    def _parse(spec: Any, config: ResourceConfig) -> Any:
        if not config.name:
            raise ConfigError("the resource config has no name")
        try:
            return spec.parse_config(config.attributes)
        except ConfigError as exc:
            raise ConfigError(f"{config.api}/{config.name}: {exc}") from None

    def _name_lock(self, api: API, name: str) -> threading.Lock:
        with self._name_locks_guard:
            return self._name_locks.setdefault((api, name), threading.Lock())


def _parse_dependency(text: str) -> ResourceName:
    try:
        return ResourceName.parse(text)
    except ValueError as exc:
        raise ConfigError(f"dependency {text!r}: {exc}") from None
