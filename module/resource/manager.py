"""The live resources of this module, keyed by (API, short name), safe to use from many threads."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Final

from module import call_state
from module.errors import NotFoundError
from module.resource.base import Resource
from module.resource.names import API

_LOG = logging.getLogger(__name__)
# viam-server (v1) reconfigures a resource by RemoveResource, then AddResource of the new config. A call that needs
# the resource in that gap waits for the replacement up to this long after the removal (and never past its own
# deadline): the Add loads the new model, which takes 0.1-1 s for typical CPU models.
REPLACEMENT_WAIT_S: Final = 3.0


@dataclass(frozen=True, slots=True)
class Removal:
    """When a resource was removed, and until when calls wait for it to be added back."""

    at: float  # time.monotonic()
    wait_until: float

    def age(self) -> float:
        return time.monotonic() - self.at

    def wait_left(self) -> float:
        return max(0.0, self.wait_until - time.monotonic())


class ResourceManager:
    """Holds resources; replacing one is a single atomic swap, so callers see the old or the new, never neither.

    A name removed moments ago is remembered (:meth:`wait_for_replacement`): a call that arrives between
    RemoveResource and AddResource waits for the replacement instead of failing.
    """

    def __init__(self, replacement_wait_s: float = REPLACEMENT_WAIT_S) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._resources: dict[tuple[API, str], Resource] = {}
        self._removed: dict[tuple[API, str], Removal] = {}
        self.replacement_wait_s = replacement_wait_s

    def find(self, api: API, name: str) -> Resource | None:
        """The resource called exactly ``name`` (viam-server sends short names; ``remote1:x`` is never a local ``x``)."""
        with self._lock:
            return self._resources.get((api, name))

    def get(self, api: API, name: str) -> Resource:
        """The resource a call names; one removed moments ago is waited for (see :meth:`wait_for_replacement`),
        within the calling RPC's own deadline."""
        found = self.find(api, name)
        if found is None and self.removal(api, name) is not None:
            left = call_state.time_left()
            found = self.wait_for_replacement(api, name, None if left is None else left * 0.9)
        if found is None:
            existing = ", ".join(repr(n) for n in self.names(api)) or "none"
            raise NotFoundError(f"no {api.subtype} resource named {name!r} in this module (existing: {existing})")
        return found

    def names(self, api: API) -> list[str]:
        with self._lock:
            return sorted(name for (a, name) in self._resources if a == api)

    def put(self, api: API, name: str, resource: Resource) -> Resource | None:
        """Store ``resource``; returns the one it replaced (the caller closes it). Wakes calls waiting for it."""
        with self._lock:
            old = self._resources.get((api, name))
            self._resources[(api, name)] = resource
            self._removed.pop((api, name), None)
            self._changed.notify_all()
            return old

    def pop(self, api: API, name: str) -> Resource | None:
        with self._lock:
            resource = self._resources.pop((api, name), None)
            if resource is not None:
                now = time.monotonic()
                self._removed[(api, name)] = Removal(at=now, wait_until=now + self.replacement_wait_s)
            return resource

    def removal(self, api: API, name: str) -> Removal | None:
        """When ``name`` was last removed, if it was removed and has not been added back since."""
        with self._lock:
            return self._removed.get((api, name))

    def wait_for_replacement(self, api: API, name: str, timeout: float | None = None) -> Resource | None:
        """The resource ``name``; if it was removed moments ago and is not back yet, wait for AddResource to put it
        back (woken by :meth:`put`, no polling) until the replacement window closes or ``timeout`` passes.

        Returns None when it is not there (never added, removed long ago, or not back in time).
        """
        key = (api, name)
        with self._changed:
            removal = self._removed.get(key)
            if key in self._resources or removal is None:
                return self._resources.get(key)
            end = removal.wait_until if timeout is None else min(removal.wait_until, time.monotonic() + timeout)
            while key not in self._resources:
                left = end - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(left)
            return self._resources.get(key)

    def close_all(self) -> None:
        with self._lock:
            items = list(self._resources.items())
            self._resources.clear()
            self._removed.clear()
            self._changed.notify_all()
        for (api, name), resource in items:
            close_quietly(resource, f"{api}/{name}")


def close_quietly(resource: Resource, label: str) -> None:
    """Close a resource that is already out of service; a failure is logged, never raised."""
    try:
        resource.close()
    except Exception:  # noqa: BLE001 - closing must not stop the caller from closing the rest
        _LOG.exception("closing %s failed", label)
