"""The gRPC server: message limits, the error boundary, reflection (v1alpha and v1) and health checking."""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2

from module import call_state
from module.errors import ModuleError, plain_text
from module.logs import resource_logger_name
from module.workers import RecentFirstExecutor

_LOG = logging.getLogger(__name__)

# viam-server sends and accepts up to 32 MiB (rpc.MaxMessageSize); frames and tensors exceed grpcio's 4 MiB default.
MAX_MESSAGE_BYTES: Final = 64 * 1024 * 1024
CHANNEL_OPTIONS: Final = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
]
_REFLECTION_V1: Final = "grpc.reflection.v1.ServerReflection"


class ErrorBoundary(grpc.ServerInterceptor):  # type: ignore[misc]
    """The one place where errors become statuses: ModuleError keeps its code, anything else is INTERNAL.

    An unexpected error is logged with its traceback under a short random error id, by the logger of the resource
    the call was for (``rdk:service:vision/<name>``, as viam-server names its own resources' loggers), so it
    reaches viam-server's log through the parent; the caller's INTERNAL message carries the same id, and only the
    exception's type (never its text, which may hold data or object reprs). Handlers carry no try/except of their
    own.

    ``resource_apis`` maps a gRPC service name (``viam.service.vision.v1.VisionService``) to its API
    (``rdk:service:vision``): calls of those services name their resource in ``request.name``.
    """

    def __init__(self, resource_apis: Mapping[str, str] | None = None) -> None:
        self._resource_apis = dict(resource_apis or {})

    def intercept_service(self, continuation: Callable[[Any], Any], details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler
        method = details.method
        api = self._resource_apis.get(method.lstrip("/").split("/", 1)[0])
        inner = handler.unary_unary

        def guarded(request: Any, context: grpc.ServicerContext) -> Any:
            try:
                # working: from the moment the request is parsed, so the interpreter pool does not hand the
                # all-cores interpreter to another call as if it were alone (module/mlmodel/pool.py)
                with call_state.serving(lambda: _wanted(context), context.time_remaining), call_state.working():
                    return inner(request, context)
            except ModuleError as exc:
                context.abort(exc.code, plain_text(str(exc)))  # a last guard: no object repr reaches a user
            except Exception as exc:  # noqa: BLE001 - the boundary: a bug in one call must not take others down
                error_id = secrets.token_hex(4)
                name = getattr(request, "name", "") if api else ""
                logger = logging.getLogger(resource_logger_name(api, name)) if api and isinstance(name, str) and name \
                    else _LOG
                logger.error("internal error in %s (error id %s)", method, error_id, exc_info=exc)
                context.abort(grpc.StatusCode.INTERNAL,
                              f"internal error in {method} (error id {error_id}): {type(exc).__name__}; the module's "
                              "log has the traceback under this id")

        return grpc.unary_unary_rpc_method_handler(guarded, request_deserializer=handler.request_deserializer,
                                                   response_serializer=handler.response_serializer)


def _wanted(context: grpc.ServicerContext) -> bool:
    """The call is neither cancelled nor past its deadline. The deadline is checked directly: grpc learns that it
    passed from an event its polling thread may process late on a busy machine."""
    remaining = context.time_remaining()
    return bool(context.is_active()) and (remaining is None or remaining > 0)


def build_server(address: str, *, tcp: bool, servicers: Iterable[Callable[[grpc.Server], None]],
                 service_names: Iterable[str], max_workers: int = 32,
                 resource_apis: Mapping[str, str] | None = None) -> grpc.Server:
    """A started-but-not-yet-serving server on ``address`` (a Unix socket path, or host:port with ``tcp``).

    ``resource_apis``: gRPC service name -> API string, for the error boundary's loggers (see ErrorBoundary).
    """
    # Calls run on the most recently idle worker thread, not a random one (module/workers.py).
    server = grpc.server(RecentFirstExecutor(max_workers, thread_name_prefix="rpc"),
                         interceptors=[ErrorBoundary(resource_apis)], options=CHANNEL_OPTIONS)
    for add in servicers:
        add(server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [*service_names, health.SERVICE_NAME, reflection.SERVICE_NAME]
    for name in [*names, ""]:
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection(names, server)
    _add_reflection_v1(server, names)
    target = address if tcp else f"unix:{os.path.abspath(address)}"
    # The socket file is created here (bind): with the process umask it could be group/world-connectable until
    # main.py's chmod. Create it owner-only instead (umask is process-wide, so restore it at once).
    old_umask = os.umask(0o177)
    try:
        bound = server.add_insecure_port(target)
    finally:
        os.umask(old_umask)
    if bound == 0:
        raise OSError(f"cannot listen on {target}")
    return server


def _add_reflection_v1(server: grpc.Server, names: list[str]) -> None:
    """grpc.reflection.v1 has the same messages as v1alpha on the wire; serve it with the v1alpha implementation."""
    servicer = reflection.ReflectionServicer(names)
    handler = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(_REFLECTION_V1, {"ServerReflectionInfo": handler}),))
