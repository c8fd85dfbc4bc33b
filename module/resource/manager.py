"""The live resources of this module, keyed by (API, short name), safe to use from many threads."""

from __future__ import annotations

import logging
import threading

from module.errors import NotFoundError
from module.resource.base import Resource
from module.resource.names import API

_LOG = logging.getLogger(__name__)


class ResourceManager:
    """Holds resources; replacing one is a single atomic swap, so callers see the old or the new, never neither."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._resources: dict[tuple[API, str], Resource] = {}

    def find(self, api: API, name: str) -> Resource | None:
        """The resource called exactly ``name`` (viam-server sends short names; ``remote1:x`` is never a local ``x``)."""
        with self._lock:
            return self._resources.get((api, name))

    def get(self, api: API, name: str) -> Resource:
        found = self.find(api, name)
        if found is None:
            existing = ", ".join(repr(n) for n in self.names(api)) or "none"
            raise NotFoundError(f"no {api.subtype} resource named {name!r} in this module (existing: {existing})")
        return found

    def names(self, api: API) -> list[str]:
        with self._lock:
            return sorted(name for (a, name) in self._resources if a == api)

    def put(self, api: API, name: str, resource: Resource) -> Resource | None:
        """Store ``resource``; returns the one it replaced (the caller closes it)."""
        with self._lock:
            old = self._resources.get((api, name))
            self._resources[(api, name)] = resource
            return old

    def pop(self, api: API, name: str) -> Resource | None:
        with self._lock:
            return self._resources.pop((api, name), None)

    def close_all(self) -> None:
        with self._lock:
            items = list(self._resources.items())
            self._resources.clear()
        for (api, name), resource in items:
            close_quietly(resource, f"{api}/{name}")


def close_quietly(resource: Resource, label: str) -> None:
    """Close a resource that is already out of service; a failure is logged, never raised."""
    try:
        resource.close()
    except Exception:  # noqa: BLE001 - closing must not stop the caller from closing the rest
        _LOG.exception("closing %s failed", label)
