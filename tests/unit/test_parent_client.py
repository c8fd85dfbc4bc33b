"""module/parent.py against an in-process fake parent: camera reads bounded by the caller's time with a message
naming the camera, and a re-dial that makes the parent usable at once after it restarted."""

from __future__ import annotations

import grpc
import PIL.Image
import pytest

from devkit.standin.parent import FakeParent, frame
from module.errors import DeadlineError, NotFoundError, UnavailableError
from module.parent import DEFAULT_TIMEOUT, ParentClient, call_timeout

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=True)
def camera(parent: FakeParent) -> None:
    parent.cameras["cam"] = frame(PIL.Image.new("RGB", (8, 6), (10, 20, 30)), "image/png")


@pytest.mark.parametrize(("remaining", "expected"), [
    (None, DEFAULT_TIMEOUT),  # no deadline: the module's own limit
    (9.2e18, DEFAULT_TIMEOUT),  # grpc's "no deadline" (2**63 ns)
    (100.0, DEFAULT_TIMEOUT),  # the module's cap applies below a long deadline too
    (5.0, 4.5),  # 10 % kept back for the answer to travel
    (2.0, 1.8),
    (0.3, 0.25),  # at least 50 ms kept back
    (20.0, DEFAULT_TIMEOUT),
    (0.0, 0.001),  # already expired: fail at once
    (-1.0, 0.001),
])
def test_a_parent_call_gets_slightly_less_than_the_callers_remaining_time(remaining: float | None,
                                                                           expected: float) -> None:
    assert call_timeout(remaining) == pytest.approx(expected)


def test_a_hanging_camera_is_a_deadline_error_naming_the_camera_and_the_time(parent: FakeParent,
                                                                             client: ParentClient) -> None:
    parent.fault("GetImages", delay=3.0, times=1)
    with pytest.raises(DeadlineError) as info:
        client.get_frame("cam", timeout=0.5)
    assert str(info.value) == "camera 'cam' did not answer within 0.45 s"
    assert client.get_frame("cam", timeout=5).mime_type == "image/png"


def test_a_deadline_reported_by_the_parent_keeps_its_words(parent: FakeParent, client: ParentClient) -> None:
    parent.fault("GetImages", grpc.StatusCode.DEADLINE_EXCEEDED, details="camera driver timed out", times=1)
    with pytest.raises(DeadlineError, match=r"camera 'cam' did not answer within 4.5 s \(the parent said: camera "
                                            r"driver timed out\)"):
        client.get_frame("cam", timeout=5)


def test_other_camera_errors_keep_their_code_and_the_parents_message(parent: FakeParent,
                                                                      client: ParentClient) -> None:
    with pytest.raises(NotFoundError, match="'nope'"):
        client.get_frame("nope", timeout=5)
    parent.fault("GetImages", grpc.StatusCode.INTERNAL, details="usb reset", times=1)
    with pytest.raises(UnavailableError, match="'cam'.*usb reset"):
        client.get_frame("cam", timeout=5)


def test_after_the_parent_restarts_a_reconnect_makes_the_next_call_work(parent: FakeParent,
                                                                        client: ParentClient) -> None:
    """viam-server restarted on the same socket: without the re-dial, grpc's reconnect backoff (which grew while
    the parent was away) keeps failing calls for seconds. With it, the very first call after the restart works."""
    assert client.get_frame("cam", timeout=5).data
    parent.stop()
    for _ in range(3):  # calls during the outage: each fails at once, and grpc's backoff grows
        with pytest.raises(UnavailableError):
            client.get_frame("cam", timeout=1)
    parent.start()
    client.reconnect()
    assert client.get_frame("cam", timeout=0.5).mime_type == "image/png"
    client.check(timeout=0.5)
