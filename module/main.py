"""Entrypoint viam-server runs (through run.sh): ``python -m module <socket path> [--log-level=..] [--tcp-mode]``."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from typing import Final

from module.catalog import REGISTRY
from module.gen.module.v1 import module_pb2, module_pb2_grpc
from module.gen.service.vision.v1 import vision_pb2_grpc
from module.logs import ParentLogHandler, level_from_arg, setup_stdout_logging
from module.memory import keep_freed_memory
from module.mlmodel.servicer import MLModelServicer
from module.mlmodel.servicer import add_to_server as add_mlmodel_servicer
from module.parent import ParentClient
from module.resource.lifecycle import Lifecycle
from module.resource.module_service import ModuleServicer
from module.server import build_server
from module.vision.servicer import VisionServicer

_LOG = logging.getLogger("module")
STOP_GRACE_S: Final = 2.0  # viam-server sends SIGTERM, waits ~3.3 s, then signals the whole group
PARENT_CHECK_INTERVAL_S: Final = 2.0


def tcp_address(text: str) -> str:
    """``host:port`` as given; a bare ``port`` or ``:port`` listens on loopback (127.0.0.1), never on every interface."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "", text
    return f"{host or '127.0.0.1'}:{port}"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="module", description="TFLite mlmodel and vision services for viam-server")
    parser.add_argument("socket_path", help="Unix socket path to serve on (host:port with --tcp-mode)")
    parser.add_argument("--log-level", default=None, help="debug, info, warn or error")
    parser.add_argument("--tcp-mode", action="store_true", help="listen on TCP host:port instead of a Unix socket")
    args, unknown = parser.parse_known_args(argv)  # tolerate flags newer viam-servers may add
    if unknown:
        _LOG.debug("ignoring unknown arguments %s", unknown)
    return args


class ModuleProcess:
    """The running module: server, lifecycle, parent watchdog and signal-driven shutdown."""

    def __init__(self, address: str, *, tcp: bool) -> None:
        self.address = address
        self.tcp = tcp
        self.stopping = threading.Event()
        self.lifecycle = Lifecycle(REGISTRY, tcp=tcp, on_parent=self._on_parent)
        services = {spec.api: spec.proto_service for spec in REGISTRY.apis.values()}
        resources = self.lifecycle.resources
        self.server = build_server(address, tcp=tcp, servicers=[
            lambda s: module_pb2_grpc.add_ModuleServiceServicer_to_server(ModuleServicer(self.lifecycle, services), s),
            lambda s: add_mlmodel_servicer(MLModelServicer(resources), s),
            lambda s: vision_pb2_grpc.add_VisionServiceServicer_to_server(VisionServicer(resources), s),
        ], service_names=[module_pb2.DESCRIPTOR.services_by_name["ModuleService"].full_name, *services.values()],
           resource_apis={proto: str(api) for api, proto in services.items()})
        self._log_handler: ParentLogHandler | None = None
        self._stdout_handlers: list[logging.Handler] = []

    def _on_parent(self, parent: ParentClient) -> None:
        # From now on logs go to the parent (it falls back to stderr per record); stdout would duplicate them.
        root = logging.getLogger()
        self._log_handler = ParentLogHandler(parent)
        self._stdout_handlers = list(root.handlers)
        for handler in self._stdout_handlers:
            root.removeHandler(handler)
        root.addHandler(self._log_handler)
        threading.Thread(target=self._watch_parent, args=(parent,), name="parent-watch", daemon=True).start()

    def _watch_parent(self, parent: ParentClient) -> None:
        """Exit when the parent is gone for good; a parent that comes back within the grace period is kept."""
        grace = float(os.environ.get("TFLITE_MODULE_PARENT_GRACE_S", "15"))
        lost_since: float | None = None
        while not self.stopping.wait(PARENT_CHECK_INTERVAL_S):
            try:
                parent.check(timeout=1.0)
                if lost_since is not None:
                    _LOG.info("the parent is reachable again")
                lost_since = None
            except Exception:  # noqa: BLE001 - any failure counts as "not reachable"
                lost_since = lost_since or time.monotonic()
                if time.monotonic() - lost_since >= grace:
                    _LOG.warning("the parent has been unreachable for %.0f s: exiting", grace)
                    self.stopping.set()

    def serve(self) -> int:
        self.server.start()
        if not self.tcp:
            os.chmod(self.address, 0o600)  # owner only: viam-server runs as the same user
        _LOG.info("serving on %s (pid %d)", self.address, os.getpid())
        self.stopping.wait()
        self.shutdown()
        return 0

    def shutdown(self) -> None:
        started = time.monotonic()
        self.server.stop(STOP_GRACE_S).wait(STOP_GRACE_S + 0.3)  # in-flight calls get the grace period
        if self._log_handler is not None:
            root = logging.getLogger()
            root.removeHandler(self._log_handler)
            self._log_handler.close()
            for handler in self._stdout_handlers:
                root.addHandler(handler)
        self.lifecycle.close()
        if not self.tcp:
            try:
                os.unlink(self.address)
            except FileNotFoundError:
                pass
        _LOG.info("stopped in %.2f s", time.monotonic() - started)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    setup_stdout_logging(level_from_arg(args.log_level))
    if not keep_freed_memory():
        _LOG.debug("no glibc mallopt: large per-call buffers go back to the kernel after each call")
    try:
        address = tcp_address(args.socket_path) if args.tcp_mode else args.socket_path
        process = ModuleProcess(address, tcp=args.tcp_mode)
    except (OSError, RuntimeError) as exc:
        _LOG.error("cannot start: %s", exc)
        return 1

    def on_signal(signum: int, _frame: object) -> None:
        _LOG.info("received %s: stopping", signal.Signals(signum).name)
        process.stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return process.serve()


if __name__ == "__main__":
    sys.exit(main())
