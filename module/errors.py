"""Domain errors, each tied to the gRPC status code it becomes at the server boundary (module/server.py).

Domain code raises these and nothing else on purpose; any other exception escaping a handler is a bug and
becomes INTERNAL (with its traceback logged).
"""

from __future__ import annotations

import grpc


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
