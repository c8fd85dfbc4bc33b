"""Domain errors, each tied to the gRPC status code it becomes at the server boundary (module/server.py).

Domain code raises these and nothing else on purpose; any other exception escaping a handler is a bug and
becomes INTERNAL (with its traceback logged).
"""

from __future__ import annotations

import re

import grpc

# "<_io.BytesIO object at 0x7f...>", "<function f at 0x...>": Python object reprs, which mean nothing to a user.
_OBJECT_REPR = re.compile(r"\s*<[^<>]*\bat 0x[0-9a-fA-F]+>")


def plain_text(text: str) -> str:
    """``text`` without Python object reprs, for a message a user reads."""
    return _OBJECT_REPR.sub("", text).strip()


def describe_exception(exc: BaseException) -> str:
    """``TypeName: message`` of a library's exception, without object reprs (just ``TypeName`` if nothing is left)."""
    text = plain_text(str(exc))
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class ModuleError(Exception):
    """Base class: an error meant for the caller, with the status code it maps to."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL


class ConfigError(ModuleError):
    """A resource config attribute is missing or has the wrong type or value. The message names the attribute."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class InvalidInputError(ModuleError):
    """A request carries a bad tensor, image, name or value. The message says what was expected and what came."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFoundError(ModuleError):
    """No resource (or model, camera, ...) by that name."""

    code = grpc.StatusCode.NOT_FOUND


class FailedPreconditionError(ModuleError):
    """The resource exists but cannot serve this call now (for example its mlmodel was removed)."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class ModelLoadError(ConfigError):
    """The configured model file could not be read or loaded by the TFLite runtime: the user must fix the file."""


class UnavailableError(ModuleError):
    """A dependency reached through the parent (camera, remote mlmodel) is not reachable."""

    code = grpc.StatusCode.UNAVAILABLE


class DeadlineError(ModuleError):
    """A dependency did not answer in time."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED


class UnsupportedError(ModuleError):
    """The call is valid but this resource does not support it."""

    code = grpc.StatusCode.UNIMPLEMENTED


class ResourceExhaustedError(ModuleError):
    """A request is larger than this module accepts (for example an image over the pixel limit)."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class CancelledError(ModuleError):
    """The caller cancelled the call or its deadline passed; work not yet started for it was skipped."""

    code = grpc.StatusCode.CANCELLED
