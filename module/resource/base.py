"""What every resource is and declares, independent of how it is registered or stored."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class Resource(Protocol):
    """What every resource instance offers the lifecycle code."""

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Dependencies:
    """Implicit dependencies a config declares (short names, as ValidateConfig returns them)."""

    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
