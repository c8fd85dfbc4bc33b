"""Module processes for the socket cases: this module and the viam-sdk alternative, start-up times, RSS and fds."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

from bench.cases.common import NO_PARENT, REPO
from bench.stats import summary
from devkit.standin.launcher import MLMODEL, VISION, ModuleProcess, component_config, short_tempdir
from module.gen.module.v1 import module_pb2, module_pb2_grpc
from module.server import CHANNEL_OPTIONS


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return -1


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _wait_path(path: str, proc: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if proc.poll() is not None:
            raise RuntimeError(f"process exited ({proc.returncode}) before creating {path}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"no socket at {path}")
        time.sleep(0.002)


def _ready(stub: module_pb2_grpc.ModuleServiceStub, attempts: int = 500) -> None:
    for _ in range(attempts):
        try:
            if stub.Ready(module_pb2.ReadyRequest(parent_address="/nonexistent/parent.sock"), timeout=3).ready:
                return
        except grpc.RpcError as exc:
            if exc.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise
        time.sleep(0.005)
    raise TimeoutError("never ready")


class SdkAlternative:
    """bench/sdk_alternative/main.py started like viam-server starts a module (own process group, no parent)."""

    def __init__(self, python: str) -> None:
        self.dir = short_tempdir()
        self.socket = os.path.join(self.dir, "sdk-alt.sock")
        self._log = open(os.path.join(self.dir, "module.log"), "wb")
        env = {**os.environ, **NO_PARENT, "VIAM_MODULE_NAME": "sdk-alt"}
        self.proc = subprocess.Popen([python, "-u", str(REPO / "bench" / "sdk_alternative" / "main.py"), self.socket],
                                     cwd=REPO / "bench" / "sdk_alternative", env=env, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.channel: grpc.Channel | None = None

    def connect(self) -> None:
        _wait_path(self.socket, self.proc)
        self.channel = grpc.insecure_channel(f"unix:{self.socket}", options=CHANNEL_OPTIONS)
        self.module = module_pb2_grpc.ModuleServiceStub(self.channel)

    def add(self, name: str, kind: tuple[str, str], attributes: dict[str, Any], deps: tuple[str, ...] = ()) -> None:
        self.module.AddResource(module_pb2.AddResourceRequest(config=component_config(name, kind, attributes),
                                                              dependencies=list(deps)), timeout=120)

    def log(self) -> str:
        self._log.flush()
        return Path(self.dir, "module.log").read_text(errors="replace")

    def close(self) -> None:
        if self.channel is not None:
            self.channel.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def start_ours(via_run_sh: bool) -> tuple[ModuleProcess, float]:
    """A module process and the seconds from spawning it to a successful Ready."""
    started = time.perf_counter()
    process = ModuleProcess(env=NO_PARENT, log_level=None, via_run_sh=via_run_sh)
    _wait_path(process.socket, process.proc)
    process.wait_for_socket()
    _ready(process.module)
    return process, time.perf_counter() - started


def start_sdk(python: str) -> tuple[SdkAlternative, float]:
    started = time.perf_counter()
    process = SdkAlternative(python)
    process.connect()
    _ready(process.module)
    return process, time.perf_counter() - started


def serving(attrs: dict[str, Any], mlmodel: str, vision: str) -> ModuleProcess:
    """This module started (python -m module) with an mlmodel ``mlmodel`` and a vision service ``vision`` on it."""
    process, _ = start_ours(False)
    try:
        process.add(mlmodel, MLMODEL, attrs)
        process.add(vision, VISION, {"mlmodel_name": mlmodel}, deps=(f"rdk:service:mlmodel/{mlmodel}",))
    except BaseException:
        process.close()
        raise
    return process


def start_times(start: Callable[[], tuple[Any, float]], repeats: int) -> dict[str, Any]:
    samples = []
    for _ in range(repeats):
        process, seconds = start()
        samples.append(seconds * 1000)
        process.close()
    return summary(samples)


class ScriptServer:
    """A bench/ server script in its own process (no module code): ``python bench/<script> <socket> <args>...``,
    which prints ``ready`` once serving; ``method(path)`` calls one of its raw-bytes methods."""

    def __init__(self, script: str, *args: str) -> None:
        self.dir = short_tempdir()
        self.socket = os.path.join(self.dir, "floor.sock")
        self.proc = subprocess.Popen([sys.executable, str(REPO / "bench" / script), self.socket, *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != b"ready":
            raise RuntimeError(f"bench/{script} did not start (exit {self.proc.wait()})")
        self.channel = grpc.insecure_channel(f"unix:{self.socket}", options=CHANNEL_OPTIONS)

    def method(self, path: str) -> grpc.UnaryUnaryMultiCallable:
        return self.channel.unary_unary(path)

    def close(self) -> None:
        self.channel.close()
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)
