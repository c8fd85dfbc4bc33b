"""Start a module exactly as viam-server's module manager does, and speak the module protocol to it.

argv ``<executable> <socket> [--log-level=..]``, its own process group, cwd and environment as viam-server sets them;
wait for the socket, ``Ready`` with 3 s deadlines and retries, a reflection lookup of every served API,
ValidateConfig (5 s), AddResource / RemoveResource with full resource names, and on stop SIGTERM, then SIGTERM to
the process group, then SIGKILL (pexec's timings).
"""

from __future__ import annotations

import os
import random
import re
import signal
import string
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Final

import grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from module.config_attrs import dict_to_struct
from module.gen.app.v1 import robot_pb2 as app_pb2
from module.gen.module.v1 import module_pb2, module_pb2_grpc
from module.local.robot_config import ResourceEntry
from module.server import CHANNEL_OPTIONS

_RETRY: Final = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.DEADLINE_EXCEEDED,
                 grpc.StatusCode.CANCELLED}
_DURATION: Final = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNITS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
STOP_TIMEOUT_S: Final = 10.0  # pexec: SIGTERM, wait a third; SIGTERM to the group, wait the rest; SIGKILL


class LaunchError(Exception):
    """The module did not start or did not answer as viam-server expects."""


def startup_timeout() -> float:
    """VIAM_MODULE_STARTUP_TIMEOUT as a Go duration ("90s", "10m"), default 5 minutes."""
    text = os.environ.get("VIAM_MODULE_STARTUP_TIMEOUT", "")
    parts = _DURATION.findall(text)
    return sum(float(n) * _UNITS[u] for n, u in parts) if parts else 300.0


def component_config(entry: ResourceEntry) -> app_pb2.ComponentConfig:
    namespace, _, subtype = entry.api.split(":")
    config = app_pb2.ComponentConfig(name=entry.name, api=entry.api, model=entry.model, namespace=namespace,
                                     type=subtype, depends_on=list(entry.depends_on),
                                     attributes=dict_to_struct(entry.attributes))
    if entry.log_level:
        config.log_configuration.level = entry.log_level
    return config


class ModuleLauncher:
    """One module process and the client side of its socket."""

    def __init__(self, name: str, executable: Path, *, socket_dir: str, parent_address: str, log_level: str = "",
                 env: Mapping[str, str] | None = None) -> None:
        self.name = name
        self.executable = executable
        suffix = "".join(random.choices(string.ascii_letters, k=5))
        self.socket = os.path.join(socket_dir, f"{name}-{suffix}.sock")
        self.parent_address = parent_address
        self.log_level = log_level
        self.user_env = dict(env or {})
        self.process: subprocess.Popen[bytes] | None = None
        self._channel: grpc.Channel | None = None
        self._stub: module_pb2_grpc.ModuleServiceStub | None = None
        self.proto_services: dict[str, str] = {}  # API -> gRPC service name, from the handler map

    # --- process ---------------------------------------------------------------------------------------------------

    def environment(self) -> dict[str, str]:
        home = os.environ.get("VIAM_HOME") or str(Path.home() / ".viam")
        data = Path(home) / "module-data" / "local" / self.name
        data.mkdir(mode=0o750, parents=True, exist_ok=True)
        return {**os.environ, "VIAM_HOME": home, "VIAM_MODULE_DATA": str(data), "VIAM_MODULE_NAME": self.name,
                "VIAM_MODULE_ROOT": str(self.executable.parent), "VIAM_MODULE_ADDRESS": self.socket, **self.user_env}

    def start(self, output: IO[bytes]) -> None:
        """Start the process and wait for its socket (the module's stdout and stderr go to ``output``)."""
        if not os.access(self.executable, os.X_OK):
            raise LaunchError(f"module {self.name!r}: {self.executable} is not an executable file")
        argv = [str(self.executable), self.socket] + ([f"--log-level={self.log_level}"] if self.log_level else [])
        env = self.environment()
        # Setpgid like pexec: its own process group (so Ctrl-C on the terminal reaches only the runner), same session.
        group: dict[str, Any] = {"process_group": 0} if sys.version_info >= (3, 11) else {"preexec_fn": os.setpgrp}
        self.process = subprocess.Popen(argv, cwd=env.get("VIAM_MODULE_ROOT"), env=env, stdout=output,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **group)
        deadline = time.monotonic() + startup_timeout()
        while not os.path.exists(self.socket):
            if self.process.poll() is not None:
                raise LaunchError(f"module {self.name!r} exited too quickly after attempted startup (exit code "
                                  f"{self.process.returncode}); it might have a fatal runtime issue")
            if time.monotonic() > deadline:
                raise LaunchError(f"module {self.name!r} did not create its socket {self.socket} in time")
            time.sleep(0.1)
        self._channel = grpc.insecure_channel(f"unix:{self.socket}", options=CHANNEL_OPTIONS)
        self._stub = module_pb2_grpc.ModuleServiceStub(self._channel)

    @property
    def channel(self) -> grpc.Channel:
        if self._channel is None:
            raise LaunchError("the module is not started")
        return self._channel

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> int | None:
        """Stop like pexec: SIGTERM, then SIGTERM to the process group, then SIGKILL to it. Returns the exit code."""
        if self._channel is not None:
            self._channel.close()
        process = self.process
        if process is None:
            return None
        steps = ((lambda: process.send_signal(signal.SIGTERM), STOP_TIMEOUT_S / 3),
                 (lambda: os.killpg(process.pid, signal.SIGTERM), STOP_TIMEOUT_S * 2 / 3),
                 (lambda: os.killpg(process.pid, signal.SIGKILL), None))
        for send, wait in steps:
            if process.poll() is not None:
                break
            try:
                send()
                process.wait(wait)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        return process.returncode

    # --- protocol --------------------------------------------------------------------------------------------------

    def _module(self) -> module_pb2_grpc.ModuleServiceStub:
        if self._stub is None:
            raise LaunchError("the module is not started")
        return self._stub

    def ready(self) -> dict[str, tuple[str, ...]]:
        """Ready until ready=true (3 s per call, retried on the codes viam-server retries); returns API -> models."""
        request = module_pb2.ReadyRequest(parent_address=self.parent_address, raw_parent_address=self.parent_address)
        deadline = time.monotonic() + startup_timeout()
        while time.monotonic() < deadline:
            if not self.alive():
                raise LaunchError(f"module {self.name!r} exited during startup")
            try:
                reply = self._module().Ready(request, timeout=3)
            except grpc.RpcError as exc:
                if exc.code() not in _RETRY:
                    raise LaunchError(f"module {self.name!r} failed Ready: {exc.code().name}: "
                                      f"{exc.details()}") from None
                time.sleep(0.2)
                continue
            if reply.ready:
                handlers = {}
                for handler in reply.handlermap.handlers:
                    s = handler.subtype.subtype
                    api = f"{s.namespace}:{s.type}:{s.subtype}"
                    handlers[api] = tuple(handler.models)
                    self.proto_services[api] = handler.subtype.proto_service
                return handlers
            time.sleep(0.01)
        raise LaunchError(f"module {self.name!r} did not become ready in time")

    def check_reflection(self) -> None:
        """viam-server looks every served gRPC service up through reflection; a module without it does not start."""
        stub = reflection_pb2_grpc.ServerReflectionStub(self.channel)
        for api, service in self.proto_services.items():
            request = reflection_pb2.ServerReflectionRequest(file_containing_symbol=service)
            try:
                replies = list(stub.ServerReflectionInfo(iter([request]), timeout=5))
            except grpc.RpcError as exc:
                raise LaunchError(f"module {self.name!r}: reflection lookup of {service} ({api}) failed: "
                                  f"{exc.code().name}: {exc.details()}") from None
            if not replies or replies[0].HasField("error_response"):
                raise LaunchError(f"module {self.name!r}: reflection does not know {service} ({api})")

    def validate(self, entry: ResourceEntry) -> tuple[list[str], list[str]]:
        """(required, optional) implicit dependencies; UNIMPLEMENTED means none. Other errors propagate."""
        try:
            reply = self._module().ValidateConfig(module_pb2.ValidateConfigRequest(config=component_config(entry)),
                                                  timeout=5)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                return [], []
            raise
        return list(reply.dependencies), list(reply.optional_dependencies)

    def add(self, entry: ResourceEntry, dependencies: Sequence[str]) -> None:
        self._module().AddResource(module_pb2.AddResourceRequest(config=component_config(entry),
                                                                 dependencies=list(dependencies)), timeout=120)

    def remove(self, full_name: str, timeout: float = 30.0) -> None:
        self._module().RemoveResource(module_pb2.RemoveResourceRequest(name=full_name), timeout=timeout)
