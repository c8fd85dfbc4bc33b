"""Typed reads of a resource's ``attributes`` (a Struct turned into plain values by ``structs.struct_to_dict``).

Every error is a ConfigError that names the attribute and says what was expected and what came, so the same
message reaches the user from ValidateConfig and from AddResource. Struct numbers always arrive as doubles, so an
integer attribute accepts 3.0 but not 3.5.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from module.errors import ConfigError


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class Attributes:
    """Reads attributes one by one; ``finish()`` rejects the ones nobody read (typos)."""

    def __init__(self, raw: Mapping[str, Any], prefix: str = "") -> None:
        self._raw = dict(raw)
        self._read: set[str] = set()
        self._prefix = prefix

    def _get(self, name: str) -> Any:
        self._read.add(name)
        return self._raw.get(name)

    def _fail(self, name: str, expected: str, value: Any) -> ConfigError:
        return ConfigError(f"attribute {self._prefix}{name!r} must be {expected}, got {_describe(value)}")

    def string(self, name: str, *, required: bool = False, default: str = "") -> str:
        value = self._get(name)
        if value is None or value == "":
            if required:
                raise ConfigError(f"attribute {self._prefix}{name!r} is required (a non-empty string)")
            return default
        if not isinstance(value, str):
            raise self._fail(name, "a string", value)
        return value

    def choice(self, name: str, choices: Iterable[str], *, default: str) -> str:
        """A string that must be one of ``choices``."""
        value = self.string(name, default=default)
        options = tuple(choices)
        if value not in options:
            raise self._fail(name, "one of " + ", ".join(options), value)
        return value

    def boolean(self, name: str, *, default: bool = False) -> bool:
        value = self._get(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self._fail(name, "true or false", value)
        return value

    def number(self, name: str, *, default: float | None = None, low: float | None = None,
               high: float | None = None) -> float | None:
        value = self._get(name)
        if value is None:
            return default
        if not _is_number(value) or not math.isfinite(value) or not _within(value, low, high):
            raise self._fail(name, "a number" + _bounds(low, high), value)
        return float(value)

    def integer(self, name: str, *, default: int | None = None, low: int | None = None,
                high: int | None = None) -> int | None:
        value = self._get(name)
        if value is None:
            return default
        if not _is_number(value) or not float(value).is_integer() or not _within(value, low, high):
            raise self._fail(name, "a whole number" + _bounds(low, high), value)
        return int(value)

    def numbers(self, name: str, *, length: int | None = None, min_length: int = 0) -> tuple[float, ...] | None:
        value = self._get(name)
        if value is None:
            return None
        size = f"exactly {length}" if length is not None else f"at least {min_length}"
        expected = f"a list of {size} numbers"
        if not isinstance(value, list) or any(isinstance(v, bool) or not isinstance(v, (int, float)) or
                                              not math.isfinite(v) for v in value):
            raise self._fail(name, expected, value)
        if (length is not None and len(value) != length) or len(value) < min_length:
            raise self._fail(name, expected, value)
        return tuple(float(v) for v in value)

    def strings(self, name: str) -> tuple[str, ...] | None:
        value = self._get(name)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self._fail(name, "a list of strings", value)
        return tuple(value)

    def string_map(self, name: str) -> dict[str, str]:
        value = self._get(name)
        if value is None:
            return {}
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise self._fail(name, "an object mapping names to names", value)
        return dict(value)

    def number_map(self, name: str, *, low: float, high: float) -> dict[str, float]:
        value = self._get(name)
        if value is None:
            return {}
        expected = f"an object mapping labels to numbers{_bounds(low, high)}"
        if not isinstance(value, dict):
            raise self._fail(name, expected, value)
        for key, v in value.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not low <= v <= high:
                raise ConfigError(f"attribute {self._prefix}{name}[{key!r}] must be a number{_bounds(low, high)}, "
                                  f"got {_describe(v)}")
        return {k: float(v) for k, v in value.items()}

    def finish(self, known: Iterable[str] = ()) -> None:
        """Reject attributes that were not read: they are typos or belong to another model."""
        unknown = sorted(set(self._raw) - self._read - set(known))
        if unknown:
            names = ", ".join(sorted(self._read | set(known)))
            raise ConfigError(f"unknown attribute(s) {', '.join(map(repr, unknown))}; known attributes: {names}")


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float))


def _within(value: float, low: float | None, high: float | None) -> bool:
    return (low is None or value >= low) and (high is None or value <= high)


def _bounds(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f" from {_fmt(low)} to {_fmt(high)}"
    if low is not None:
        return f" >= {_fmt(low)}"
    if high is not None:
        return f" <= {_fmt(high)}"
    return ""


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)
