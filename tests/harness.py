"""Launch the module the way viam-server's module manager does, and talk to it over its socket."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import grpc

from module.config_attrs import dict_to_struct
from module.gen.app.v1 import robot_pb2 as app_pb2
from module.gen.module.v1 import module_pb2, module_pb2_grpc
from module.gen.service.mlmodel.v1 import mlmodel_pb2_grpc
from module.gen.service.vision.v1 import vision_pb2_grpc
from module.models import MLMODEL_VISION, TFLITE_CPU
from module.server import CHANNEL_OPTIONS

REPO = Path(__file__).resolve().parents[1]
MLMODEL = ("rdk:service:mlmodel", str(TFLITE_CPU))
VISION = ("rdk:service:vision", str(MLMODEL_VISION))


def short_tempdir() -> str:
    """A directory for sockets: Unix socket paths must stay under 108 bytes, pytest's tmp_path may not."""
    return tempfile.mkdtemp(prefix="vm-", dir="/tmp")


def free_tcp_port() -> int:
    """A port on 127.0.0.1 that was free a moment ago (viam-server picks one the same way for tcp_mode)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def component_config(name: str, kind: tuple[str, str], attributes: Mapping[str, Any]) -> app_pb2.ComponentConfig:
    api, model = kind
    return app_pb2.ComponentConfig(name=name, api=api, model=model, type=api.rsplit(":", 1)[1],
                                   namespace=api.split(":", 1)[0], attributes=dict_to_struct(attributes))


class ModuleProcess:
    """One module process on a Unix socket. ``via_run_sh`` starts ./run.sh exactly as viam-server does."""

    def __init__(self, *, via_run_sh: bool = False, env: Mapping[str, str] | None = None,
                 log_level: str | None = "debug", socket_dir: str | None = None, tcp_port: int | None = None) -> None:
        """``tcp_port``: serve on 127.0.0.1:port with ``--tcp-mode`` (viam-server's tcp_mode) instead of a socket."""
        self.dir = socket_dir or short_tempdir()
        self._own_dir = socket_dir is None
        self.tcp_port = tcp_port
        self.socket = os.path.join(self.dir, "tflite-AbCdE.sock")
        self.address = f"127.0.0.1:{tcp_port}" if tcp_port is not None else self.socket
        exe = [str(REPO / "run.sh")] if via_run_sh else [sys.executable, "-u", "-m", "module"]
        argv = [*exe, self.address] + ([f"--log-level={log_level}"] if log_level else [])
        if tcp_port is not None:
            argv.append("--tcp-mode")
        data_dir = os.path.join(self.dir, "data")
        os.makedirs(data_dir, mode=0o750, exist_ok=True)  # viam-server creates VIAM_MODULE_DATA before the start
        full_env = {**os.environ, "VIAM_MODULE_NAME": "tflite", "VIAM_MODULE_ROOT": str(REPO),
                    "VIAM_MODULE_DATA": data_dir, "VIAM_MODULE_ADDRESS": self.address,
                    "VIAM_HOME": os.path.join(self.dir, "home"), **(env or {})}
        self.log_path = os.path.join(self.dir, "module.log")
        self._log = open(self.log_path, "wb")
        # Like viam-server (pexec): the module leads its own process group, cwd is VIAM_MODULE_ROOT.
        self.proc = subprocess.Popen(argv, cwd=REPO, env=full_env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.channel: grpc.Channel | None = None

    def wait_for_socket(self, timeout: float = 120.0) -> float:
        """Wait like viam-server (socket file, or in TCP mode a port that accepts) and open the channel."""
        started = time.monotonic()
        while not self._listening():
            if self.proc.poll() is not None:
                raise RuntimeError(f"module exited too quickly ({self.proc.returncode}):\n{self.log()}")
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"no socket after {timeout} s:\n{self.log()}")
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

    def ready(self, parent_address: str = "", attempts: int = 50) -> module_pb2.ReadyResponse:
        """Ready with viam-server's 3 s per-call deadline, retried on the codes it retries on."""
        retry = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.DEADLINE_EXCEEDED,
                 grpc.StatusCode.CANCELLED}
        for _ in range(attempts):
            try:
                reply = self.module.Ready(module_pb2.ReadyRequest(parent_address=parent_address,
                                                                  raw_parent_address=parent_address), timeout=3)
                if reply.ready:
                    return reply
            except grpc.RpcError as exc:
                if exc.code() not in retry:
                    raise
            time.sleep(0.2)
        raise TimeoutError("module never became ready")

    def add(self, name: str, kind: tuple[str, str], attributes: Mapping[str, Any], deps: tuple[str, ...] = ()) -> None:
        self.module.AddResource(module_pb2.AddResourceRequest(config=component_config(name, kind, attributes),
                                                              dependencies=list(deps)), timeout=120)

    def validate(self, name: str, kind: tuple[str, str], attributes: Mapping[str, Any]) -> module_pb2.ValidateConfigResponse:
        return self.module.ValidateConfig(module_pb2.ValidateConfigRequest(config=component_config(name, kind, attributes)),
                                          timeout=5)

    def reconfigure(self, name: str, kind: tuple[str, str], attributes: Mapping[str, Any], deps: tuple[str, ...] = ()) -> None:
        self.module.ReconfigureResource(module_pb2.ReconfigureResourceRequest(
            config=component_config(name, kind, attributes), dependencies=list(deps)), timeout=120)

    def remove(self, full_name: str) -> None:
        self.module.RemoveResource(module_pb2.RemoveResourceRequest(name=full_name), timeout=30)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> tuple[int | None, float]:
        """Signal the process; returns (exit code, seconds it took to exit)."""
        started = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode, time.monotonic() - started

    def log(self) -> str:
        self._log.flush()
        return Path(self.log_path).read_text(errors="replace")

    def close(self) -> None:
        if self.channel is not None:
            self.channel.close()
        if self.proc.poll() is None:
            self.stop(signal.SIGKILL)
        self._log.close()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
