"""Launch the module exactly as viam-server's module manager does, and speak the module protocol to it.

argv ``<executable> <socket> [--log-level=..] [--tcp-mode]``, its own process group, cwd and environment as
viam-server sets them; wait for the socket (or port), ``Ready`` with 3 s deadlines retried on the codes viam-server
retries, a reflection lookup of every served API, ValidateConfig / AddResource / ReconfigureResource /
RemoveResource, and on stop SIGTERM, then SIGTERM to the process group, then SIGKILL (pexec's timings).
Used by the local runner, the tests and the benchmarks alike.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any, Final

import grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from module.catalog import MLMODEL_VISION, TFLITE_CPU
from module.gen.app.v1 import robot_pb2 as app_pb2
from module.gen.module.v1 import module_pb2, module_pb2_grpc
from module.gen.service.mlmodel.v1 import mlmodel_pb2_grpc
from module.gen.service.vision.v1 import vision_pb2_grpc
from module.resource.structs import dict_to_struct
from module.server import CHANNEL_OPTIONS

REPO = Path(__file__).resolve().parents[2]
MLMODEL = ("rdk:service:mlmodel", str(TFLITE_CPU))
VISION = ("rdk:service:vision", str(MLMODEL_VISION))
_RETRY: Final = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.DEADLINE_EXCEEDED,
                 grpc.StatusCode.CANCELLED}
_DURATION: Final = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNITS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
STOP_TIMEOUT_S: Final = 10.0  # pexec: SIGTERM, wait a third; SIGTERM to the group, wait the rest; SIGKILL


class LaunchError(RuntimeError):
    """The module did not start or did not answer as viam-server expects."""


def startup_timeout() -> float:
    """VIAM_MODULE_STARTUP_TIMEOUT as a Go duration ("90s", "10m"), default 5 minutes."""
    parts = _DURATION.findall(os.environ.get("VIAM_MODULE_STARTUP_TIMEOUT", ""))
    return sum(float(n) * _UNITS[u] for n, u in parts) if parts else 300.0


def short_tempdir() -> str:
    """A directory for sockets: Unix socket paths must stay under 108 bytes, pytest's tmp_path may not."""
    return tempfile.mkdtemp(prefix="vm-", dir="/tmp")


def free_tcp_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago (viam-server picks one the same way for tcp_mode)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def component_config(name: str, kind: tuple[str, str], attributes: Mapping[str, Any], *,
                     depends_on: tuple[str, ...] = (), log_level: str = "") -> app_pb2.ComponentConfig:
    """The ComponentConfig viam-server sends for a resource (``kind`` = (api, model))."""
    api, model = kind
    config = app_pb2.ComponentConfig(name=name, api=api, model=model, type=api.rsplit(":", 1)[1],
                                     namespace=api.split(":", 1)[0], depends_on=list(depends_on),
                                     attributes=dict_to_struct(attributes))
    if log_level:
        config.log_configuration.level = log_level
    return config


class ModuleProcess:
    """One module process, started at construction, and the client side of its socket.

    Args:
        executable: What viam-server would run (a module's ``executable_path``); default ``python -m module``, or
            ``run.sh`` with ``via_run_sh``.
        name: The module's name in the robot config (VIAM_MODULE_NAME, the socket's name).
        env: The module's ``env`` from the config, over the inherited environment.
        log_level: ``--log-level=`` argument (None: none).
        socket_dir: Where the socket goes (default: a fresh short temp dir, removed on close).
        tcp_port: Serve on 127.0.0.1:port with ``--tcp-mode`` (viam-server's tcp_mode) instead of a socket.
        output: Where the module's stdout and stderr go (default: ``module.log`` in the socket dir, see ``log()``).
        viam_home: VIAM_HOME; VIAM_MODULE_DATA is ``<home>/module-data/local/<name>`` (default: inside socket_dir).
    """

    def __init__(self, *, executable: Path | None = None, via_run_sh: bool = False, name: str = "tflite",
                 env: Mapping[str, str] | None = None, log_level: str | None = "debug", socket_dir: str | None = None,
                 tcp_port: int | None = None, output: IO[bytes] | None = None, viam_home: str | None = None) -> None:
        self.dir = socket_dir or short_tempdir()
        self._own_dir = socket_dir is None
        self.name = name
        self.tcp_port = tcp_port
        suffix = "".join(random.choices(string.ascii_letters, k=5))
        self.socket = os.path.join(self.dir, f"{name}-{suffix}.sock")
        self.address = f"127.0.0.1:{tcp_port}" if tcp_port is not None else self.socket
        if executable is None and via_run_sh:
            executable = REPO / "run.sh"
        if executable is not None and not os.access(executable, os.X_OK):
            raise LaunchError(f"module {name!r}: {executable} is not an executable file")
        exe = [str(executable)] if executable is not None else [sys.executable, "-u", "-m", "module"]
        argv = [*exe, self.address] + ([f"--log-level={log_level}"] if log_level else [])
        if tcp_port is not None:
            argv.append("--tcp-mode")
        home = viam_home or os.path.join(self.dir, "home")
        data_dir = os.path.join(home, "module-data", "local", name) if viam_home else os.path.join(self.dir, "data")
        os.makedirs(data_dir, mode=0o750, exist_ok=True)  # viam-server creates VIAM_MODULE_DATA before the start
        root = executable.parent if executable is not None else REPO
        full_env = {**os.environ, "VIAM_MODULE_NAME": name, "VIAM_MODULE_ROOT": str(root), "VIAM_MODULE_DATA": data_dir,
                    "VIAM_MODULE_ADDRESS": self.address, "VIAM_HOME": home, **(env or {})}
        self.log_path = os.path.join(self.dir, "module.log") if output is None else None
        self._log = open(self.log_path, "wb") if self.log_path else None
        # Like viam-server (pexec): the module leads its own process group, cwd is VIAM_MODULE_ROOT.
        self.proc = subprocess.Popen(argv, cwd=root, env=full_env, stdout=self._log or output, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        self.channel: grpc.Channel | None = None
        self.handlers: dict[str, tuple[str, ...]] = {}  # API -> models, from the last Ready
        self.proto_services: dict[str, str] = {}  # API -> gRPC service name, from the last Ready

    # --- process ---------------------------------------------------------------------------------------------------

    def wait_for_socket(self, timeout: float | None = None) -> float:
        """Wait like viam-server (socket file, or in TCP mode a port that accepts) and open the channel."""
        started = time.monotonic()
        limit = startup_timeout() if timeout is None else timeout
        while not self._listening():
            if self.proc.poll() is not None:
                raise LaunchError(f"module {self.name!r} exited too quickly after attempted startup (exit code "
                                  f"{self.proc.returncode}):\n{self.log()}")
            if time.monotonic() - started > limit:
                raise LaunchError(f"module {self.name!r} did not listen within {limit} s:\n{self.log()}")
            time.sleep(0.05)
        target = self.address if self.tcp_port is not None else f"unix:{self.socket}"
        self.channel = grpc.insecure_channel(target, options=CHANNEL_OPTIONS)
        self.module = module_pb2_grpc.ModuleServiceStub(self.channel)
        self.mlmodel = mlmodel_pb2_grpc.MLModelServiceStub(self.channel)
        self.vision = vision_pb2_grpc.VisionServiceStub(self.channel)
        return time.monotonic() - started

    def _listening(self) -> bool:
        if self.tcp_port is None:
            return os.path.exists(self.socket)
        try:
            socket.create_connection(("127.0.0.1", self.tcp_port), timeout=0.5).close()
            return True
        except OSError:
            return False

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT_S) -> tuple[int | None, float]:
        """Stop like pexec: ``sig``, then SIGTERM to the process group, then SIGKILL to it. Returns (exit code,
        seconds it took to exit)."""
        started = time.monotonic()
        proc = self.proc
        steps = ((lambda: proc.send_signal(sig), timeout / 3), (lambda: os.killpg(proc.pid, signal.SIGTERM), timeout * 2 / 3),
                 (lambda: os.killpg(proc.pid, signal.SIGKILL), None))
        for send, wait in steps:
            if proc.poll() is not None:
                break
            try:
                send()
                proc.wait(wait)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        return proc.returncode, time.monotonic() - started

    def log(self) -> str:
        """What the module printed (empty when its output went to a caller's ``output``)."""
        if self._log is None or self.log_path is None:
            return ""
        self._log.flush()
        return Path(self.log_path).read_text(errors="replace")

    def close(self) -> None:
        if self.channel is not None:
            self.channel.close()
        if self.proc.poll() is None:
            self.stop(signal.SIGKILL)
        if self._log is not None:
            self._log.close()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    # --- module protocol -------------------------------------------------------------------------------------------

    def ready(self, parent_address: str = "", timeout: float | None = None) -> module_pb2.ReadyResponse:
        """Ready with viam-server's 3 s per-call deadline, retried on the codes it retries on, until ready=true."""
        request = module_pb2.ReadyRequest(parent_address=parent_address, raw_parent_address=parent_address)
        deadline = time.monotonic() + (startup_timeout() if timeout is None else timeout)
        while time.monotonic() < deadline:
            if not self.alive():
                raise LaunchError(f"module {self.name!r} exited during startup:\n{self.log()}")
            try:
                reply = self.module.Ready(request, timeout=3)
            except grpc.RpcError as exc:
                if exc.code() not in _RETRY:
                    raise
                time.sleep(0.2)
                continue
            if reply.ready:
                for handler in reply.handlermap.handlers:
                    s = handler.subtype.subtype
                    api = f"{s.namespace}:{s.type}:{s.subtype}"
                    self.handlers[api] = tuple(handler.models)
                    self.proto_services[api] = handler.subtype.proto_service
                return reply
            time.sleep(0.01)
        raise LaunchError(f"module {self.name!r} did not become ready in time")

    def check_reflection(self) -> None:
        """viam-server looks every served gRPC service up through reflection; a module without it does not start."""
        assert self.channel is not None, "wait_for_socket first"
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

    def add_config(self, config: app_pb2.ComponentConfig, deps: tuple[str, ...] | list[str] = ()) -> None:
        self.module.AddResource(module_pb2.AddResourceRequest(config=config, dependencies=list(deps)), timeout=120)

    def validate_config(self, config: app_pb2.ComponentConfig) -> module_pb2.ValidateConfigResponse:
        return self.module.ValidateConfig(module_pb2.ValidateConfigRequest(config=config), timeout=5)

    def add(self, name: str, kind: tuple[str, str], attributes: Mapping[str, Any], deps: tuple[str, ...] = ()) -> None:
        self.add_config(component_config(name, kind, attributes), deps)

    def validate(self, name: str, kind: tuple[str, str], attributes: Mapping[str, Any]) -> module_pb2.ValidateConfigResponse:
        return self.validate_config(component_config(name, kind, attributes))

    def reconfigure(self, name: str, kind: tuple[str, str], attributes: Mapping[str, Any], deps: tuple[str, ...] = ()) -> None:
        self.module.ReconfigureResource(module_pb2.ReconfigureResourceRequest(
            config=component_config(name, kind, attributes), dependencies=list(deps)), timeout=120)

    def remove(self, full_name: str, timeout: float = 30.0) -> None:
        self.module.RemoveResource(module_pb2.RemoveResourceRequest(name=full_name), timeout=timeout)
