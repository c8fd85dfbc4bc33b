"""Viam resource names: API triplets, model triplets and full names such as ``rdk:service:mlmodel/my-model``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

_PART = r"[\w-]+"
_TRIPLET = re.compile(rf"^({_PART}):({_PART}):({_PART})$")
# The RDK's resource-name regex: "<api>/<optional remote prefixes><name>".
_FULL_NAME = re.compile(rf"^({_PART}:{_PART}:{_PART})/({_PART}:(?:{_PART}:)*)?(.+)$")


def _triplet(text: str, expected: str) -> tuple[str, str, str]:
    match = _TRIPLET.match(text)
    if not match:
        raise ValueError(f"{text!r} is not {expected}")
    namespace, middle, last = match.groups()
    return namespace, middle, last


@dataclass(frozen=True, slots=True)
class API:
    """An API triplet, e.g. ``rdk:service:vision``."""

    namespace: str
    type: str
    subtype: str

    @classmethod
    def parse(cls, text: str) -> API:
        return cls(*_triplet(text, "an API triplet like 'rdk:service:vision'"))

    def __str__(self) -> str:
        return f"{self.namespace}:{self.type}:{self.subtype}"


@dataclass(frozen=True, slots=True)
class Model:
    """A model triplet, e.g. ``acme:vision:mlmodel``."""

    namespace: str
    family: str
    name: str

    @classmethod
    def parse(cls, text: str) -> Model:
        return cls(*_triplet(text, "a model triplet like 'acme:vision:mlmodel'"))

    def __str__(self) -> str:
        return f"{self.namespace}:{self.family}:{self.name}"


@dataclass(frozen=True, slots=True)
class ResourceName:
    """A resource: its API and its short name (``remote:`` prefixes included)."""

    api: API
    name: str

    @classmethod
    def parse(cls, text: str) -> ResourceName:
        """Parse a full name such as ``rdk:component:camera/remote1:cam1``."""
        match = _FULL_NAME.match(text)
        if not match:
            raise ValueError(f"{text!r} is not a full resource name like 'rdk:service:vision/my-vision'")
        api, remote, name = match.groups()
        return cls(API.parse(api), (remote or "") + name)

    def __str__(self) -> str:
        return f"{self.api}/{self.name}"


MLMODEL_API: Final = API("rdk", "service", "mlmodel")
VISION_API: Final = API("rdk", "service", "vision")
CAMERA_API: Final = API("rdk", "component", "camera")
