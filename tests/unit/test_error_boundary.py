"""module/server.py's ErrorBoundary and module/call_state.py without a process: typed errors keep their status,
anything else is INTERNAL with an error id that matches a logged traceback, and each call's "still wanted" state
reaches code far below the servicer."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

import grpc
import pytest

from module import call_state
from module.errors import (
    CancelledError,
    ConfigError,
    DeadlineError,
    FailedPreconditionError,
    InvalidInputError,
    ModuleError,
    NotFoundError,
    ResourceExhaustedError,
    UnavailableError,
    UnsupportedError,
)
from module.server import ErrorBoundary

VISION_SERVICE = "viam.service.vision.v1.VisionService"


class Aborted(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code, self.details = code, details


class FakeContext:
    """The parts of grpc.ServicerContext the boundary uses."""

    def __init__(self, *, active: bool = True, remaining: float | None = 30.0) -> None:
        self.active, self.remaining = active, remaining

    def is_active(self) -> bool:
        return self.active

    def time_remaining(self) -> float | None:
        return self.remaining

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise Aborted(code, details)


class Request:
    def __init__(self, name: str = "vis") -> None:
        self.name = name


def guarded(handler: Callable[[Any, Any], Any], method: str = f"/{VISION_SERVICE}/GetDetections") -> Callable[..., Any]:
    """The handler as the boundary wraps it for ``method``."""
    boundary = ErrorBoundary({VISION_SERVICE: "rdk:service:vision"})
    details = type("Details", (), {"method": method, "invocation_metadata": ()})()
    wrapped = boundary.intercept_service(lambda _: grpc.unary_unary_rpc_method_handler(handler), details)
    return wrapped.unary_unary  # type: ignore[no-any-return]


def call(handler: Callable[[Any, Any], Any], context: FakeContext | None = None, **kwargs: Any) -> Aborted:
    with pytest.raises(Aborted) as info:
        guarded(handler, **kwargs)(Request(), context or FakeContext())
    return info.value


TYPED = [(ConfigError, grpc.StatusCode.INVALID_ARGUMENT), (InvalidInputError, grpc.StatusCode.INVALID_ARGUMENT),
         (NotFoundError, grpc.StatusCode.NOT_FOUND), (FailedPreconditionError, grpc.StatusCode.FAILED_PRECONDITION),
         (UnavailableError, grpc.StatusCode.UNAVAILABLE), (DeadlineError, grpc.StatusCode.DEADLINE_EXCEEDED),
         (UnsupportedError, grpc.StatusCode.UNIMPLEMENTED), (ResourceExhaustedError, grpc.StatusCode.RESOURCE_EXHAUSTED),
         (CancelledError, grpc.StatusCode.CANCELLED)]


@pytest.mark.parametrize(("error", "code"), TYPED, ids=[e.__name__ for e, _ in TYPED])
def test_a_typed_error_keeps_its_code_and_message(error: type[ModuleError], code: grpc.StatusCode) -> None:
    def handler(request: Any, context: Any) -> Any:
        raise error("attribute 'x' must be 1")

    aborted = call(handler)
    assert (aborted.code, aborted.details) == (code, "attribute 'x' must be 1")


def test_a_result_passes_through() -> None:
    assert guarded(lambda request, context: f"hello {request.name}")(Request(), FakeContext()) == "hello vis"


def test_an_unexpected_error_is_internal_with_an_id_that_matches_the_logged_traceback(
        caplog: pytest.LogCaptureFixture) -> None:
    def handler(request: Any, context: Any) -> Any:
        raise KeyError(f"secret <object at 0x7f00> for {request.name}")

    with caplog.at_level(logging.ERROR):
        aborted = call(handler)
    assert aborted.code == grpc.StatusCode.INTERNAL
    found = re.search(r"error id ([0-9a-f]{8})", aborted.details)
    assert found, aborted.details
    assert "KeyError" in aborted.details and "secret" not in aborted.details and "0x" not in aborted.details
    (record,) = [r for r in caplog.records if found.group(1) in r.getMessage()]
    assert record.name == "rdk:service:vision/vis"  # the resource's logger, named as viam-server names it
    assert record.exc_info is not None and record.exc_info[0] is KeyError  # the traceback is logged


def test_each_unexpected_error_gets_its_own_id() -> None:
    def handler(request: Any, context: Any) -> Any:
        raise RuntimeError("boom")

    ids = {re.search(r"error id (\w+)", call(handler).details).group(1) for _ in range(20)}  # type: ignore[union-attr]
    assert len(ids) == 20


def test_a_call_to_a_service_without_resources_logs_under_the_module(caplog: pytest.LogCaptureFixture) -> None:
    def handler(request: Any, context: Any) -> Any:
        raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR):
        call(handler, method="/viam.module.v1.ModuleService/AddResource")
    assert [r.name for r in caplog.records] == ["module.server"]


def test_streaming_handlers_are_left_alone() -> None:
    boundary = ErrorBoundary()
    stream = grpc.stream_stream_rpc_method_handler(lambda requests, context: iter(()))
    details = type("Details", (), {"method": "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"})()
    assert boundary.intercept_service(lambda _: stream, details) is stream
    assert boundary.intercept_service(lambda _: None, details) is None


@pytest.mark.parametrize(("context", "abandoned"), [
    (FakeContext(), False),
    (FakeContext(remaining=None), False),  # no deadline at all
    (FakeContext(active=False), True),  # the client cancelled
    (FakeContext(remaining=0.0), True),  # the deadline passed, even before grpc's own thread noticed
    (FakeContext(remaining=-1.0), True),
])
def test_the_handler_sees_whether_its_call_is_still_wanted(context: FakeContext, abandoned: bool) -> None:
    seen: list[bool] = []
    guarded(lambda request, ctx: seen.append(call_state.abandoned()))(Request(), context)
    assert seen == [abandoned]


def test_call_state_follows_the_call_as_it_changes() -> None:
    context = FakeContext()
    seen: list[bool] = []

    def handler(request: Any, ctx: Any) -> None:
        seen.append(call_state.abandoned())
        context.active = False  # the client cancels while the handler runs
        seen.append(call_state.abandoned())

    guarded(handler)(Request(), context)
    assert seen == [False, True]
    assert not call_state.abandoned()  # unbound after the call


def test_call_state_outside_a_call_and_nested() -> None:
    assert not call_state.abandoned()
    with call_state.serving(lambda: False):
        assert call_state.abandoned()
        with call_state.serving(lambda: True):
            assert not call_state.abandoned()
        assert call_state.abandoned()
    assert not call_state.abandoned()


def test_no_object_repr_reaches_the_caller_even_from_a_typed_error() -> None:
    def handler(request: Any, context: Any) -> Any:
        raise InvalidInputError("cannot decode 4096 bytes as image/jpeg: cannot identify image file "
                                "<_io.BytesIO object at 0x7f3a2b1c0d90>")

    aborted = call(handler)
    assert aborted.details == "cannot decode 4096 bytes as image/jpeg: cannot identify image file"


@pytest.mark.parametrize(("remaining", "left"), [(12.5, 12.5), (None, None), (9.2e18, None), (-0.5, 0.0)])
def test_the_handler_sees_how_long_its_caller_still_waits(remaining: float | None, left: float | None) -> None:
    seen: list[float | None] = []
    guarded(lambda request, ctx: seen.append(call_state.time_left()))(Request(), FakeContext(remaining=remaining))
    assert seen == [left]
    assert call_state.time_left() is None  # outside a call
