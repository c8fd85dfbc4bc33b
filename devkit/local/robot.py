"""viam-server in miniature for one module: the parent with its cameras, the module process, and the module's
resources validated and added in dependency order (removed again on close). Every problem with the config,
including the errors the module returns from ValidateConfig and AddResource, names the file, line and attribute."""

from __future__ import annotations

import difflib
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Final

import grpc

from devkit.local.frames import FrameSource, VideoFrames, expand
from devkit.local.robot_config import ConfigProblem, ModuleEntry, ResourceEntry, RobotConfig, raise_all
from devkit.standin.launcher import LaunchError, ModuleProcess, component_config
from devkit.standin.parent import DepthData, FakeParent
from module.gen.app.v1 import robot_pb2 as app_pb2
from module.gen.common.v1 import common_pb2
from module.resource.names import CAMERA_API

REPO: Final = Path(__file__).resolve().parents[2]
DEFAULT_MODULE: Final = ModuleEntry(name="tflite", executable_path="", log_level="", env={}, path=())
IMAGE_ATTRIBUTE: Final = "color_image_file_path"  # rdk:builtin:image_file; here also a folder, a glob or a video
IMAGE_FILE: Final = "rdk:builtin:image_file"
POINT_CLOUD_ATTRIBUTE: Final = "pointcloud_file_path"  # rdk:builtin:image_file: a PCD file
INTRINSICS_ATTRIBUTE: Final = "intrinsic_parameters"  # rdk:builtin:image_file: width_px height_px fx fy ppx ppy
_INTRINSICS_KEYS: Final = ("width_px", "height_px", "fx", "fy", "ppx", "ppy")
_WORD: Final = re.compile(r"[A-Za-z_]\w*")
_QUOTED: Final = re.compile(r"'([\w-]+)'")


def make_cameras(config: RobotConfig, images: Mapping[str, Sequence[str]], video: VideoFrames | None = None,
                 problems: list[ConfigProblem] | None = None) -> dict[str, FrameSource]:
    """A FrameSource per camera of the config that has pictures: ``images[name]`` (paths relative to the working
    directory) when given, else the camera's ``color_image_file_path`` (relative to the config file). Cameras of
    other models without that attribute (a webcam, a transform camera) are left out: the caller lists them as
    skipped. Every problem is reported, not just the first: raised, or added to ``problems`` when it is given."""
    cameras: dict[str, FrameSource] = {}
    found: list[ConfigProblem] = []
    for name, specs in images.items():
        try:
            cameras[name] = FrameSource([f for spec in specs for f in expand(spec, Path.cwd(), video)])
        except ValueError as exc:
            found.append(ConfigProblem("--images", None, (), str(exc)))
    for entry in config.resources:
        if entry.api != str(CAMERA_API) or entry.name in cameras or entry.name in images:
            continue
        spec = entry.attributes.get(IMAGE_ATTRIBUTE)
        if not isinstance(spec, str) or not spec:
            if entry.model == IMAGE_FILE:
                found.append(config.problem((*entry.path, "attributes"), f"camera {entry.name!r} has no images: "
                                            f"set {IMAGE_ATTRIBUTE} (a file, a folder or a glob) or pass --images"))
            continue
        try:
            cameras[entry.name] = FrameSource(expand(spec, config.source.parent, video))
        except ValueError as exc:
            found.append(config.problem((*entry.path, "attributes", IMAGE_ATTRIBUTE), str(exc)))
    if problems is None:
        raise_all(found)
    else:
        problems += found
    return cameras


def make_depth_cameras(config: RobotConfig) -> dict[str, DepthData]:
    """The depth cameras of the config: cameras with ``pointcloud_file_path`` (a PCD, relative to the config file)
    and ``intrinsic_parameters`` (as rdk's image_file camera takes them), served by GetPointCloud/GetProperties."""
    depth: dict[str, DepthData] = {}
    for entry in config.resources:
        if entry.api != str(CAMERA_API) or POINT_CLOUD_ATTRIBUTE not in entry.attributes:
            continue
        where = (*entry.path, "attributes")
        spec = entry.attributes[POINT_CLOUD_ATTRIBUTE]
        path = Path(str(spec)).expanduser()
        path = path if path.is_absolute() else config.source.parent / path
        if not isinstance(spec, str) or not path.is_file():
            raise config.problem((*where, POINT_CLOUD_ATTRIBUTE), f"must be a PCD file, got {spec!r} ({path})")
        raw = entry.attributes.get(INTRINSICS_ATTRIBUTE)
        if not isinstance(raw, Mapping) or any(isinstance(raw.get(k), bool) or not isinstance(raw.get(k), (int, float))
                                              or raw[k] <= 0 for k in _INTRINSICS_KEYS):
            raise config.problem((*where, INTRINSICS_ATTRIBUTE), "a depth camera needs intrinsic_parameters with "
                                 f"{', '.join(_INTRINSICS_KEYS)} (positive numbers, in pixels), got {raw!r}")
        w, h, fx, fy, ppx, ppy = (raw[k] for k in _INTRINSICS_KEYS)
        depth[entry.name] = DepthData(path.read_bytes(), (int(w), int(h), float(fx), float(fy), float(ppx), float(ppy)))
    return depth


def locate(config: RobotConfig, entry: ResourceEntry, error: grpc.RpcError, call: str) -> ConfigProblem:
    """A module error about ``entry``, pinned to the attribute it names (by key, else by value) when it names one."""
    message = f"{(error.details() or '').removeprefix(f'{entry.full_name}: ')} ({call}: {error.code().name})"
    attributes = (*entry.path, "attributes")
    for word in _WORD.findall(message):
        if word in entry.attributes:
            return config.problem((*attributes, word), message)
    for key, value in entry.attributes.items():
        if isinstance(value, str) and len(value) > 1 and value in message:
            return config.problem((*attributes, key), message)
    for word in _QUOTED.findall(message):  # a required attribute is missing: is one of those present a typo of it?
        close = difflib.get_close_matches(word, [str(k) for k in entry.attributes], n=1, cutoff=0.8)
        if close:
            return config.problem((*attributes, close[0]), f"is {close[0]!r} a typo of {word!r}? {message}")
    return config.problem(attributes if "attribute" in message else entry.path, message)


@dataclass
class ModuleLog:
    """The module's output file; log entries it sends to the parent go there too, warnings and errors also to stderr."""

    path: Path
    file: IO[bytes] = field(init=False)

    def __post_init__(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(self.path, "wb")  # noqa: SIM115 - closed in close()

    def entry(self, log: common_pb2.LogEntry) -> None:
        line = f"{log.time.ToDatetime():%H:%M:%S} {log.level.upper()} {log.logger_name}: {log.message}"
        self.file.write(line.encode() + b"\n")
        self.file.flush()
        if log.level in ("warn", "error"):
            print(f"module: {line}", file=sys.stderr)

    def tail(self, lines: int = 15) -> str:
        self.file.flush()
        return "".join(self.path.read_text(errors="replace").splitlines(keepends=True)[-lines:])

    def close(self) -> None:
        self.file.close()


class LocalRobot:
    """Starts everything in ``start()``; ``close()`` removes the resources and stops the module and the parent."""

    def __init__(self, config: RobotConfig, cameras: Mapping[str, FrameSource], log: ModuleLog, *,
                 executable: Path | None = None, depth: Mapping[str, DepthData] | None = None,
                 problems: Sequence[ConfigProblem] = ()) -> None:
        self.config = config
        self.problems = list(problems)  # found before the start: reported with the module's, in one pass
        self.module = _this_module(config)
        self.log = log
        self.executable = executable or self._executable()
        self.socket_dir = tempfile.mkdtemp(prefix="viam-module-", dir="/tmp")  # socket paths must stay short
        self.cameras = dict(cameras)
        self.parent = FakeParent(f"{self.socket_dir}/parent.sock", on_log=log.entry)
        self.parent.cameras.update(self.cameras)
        self.depth = {name: d for name, d in (depth or {}).items() if name in self.cameras}
        self.parent.point_clouds.update(self.depth)
        self.parent.add_resources([f"{CAMERA_API}/{name}" for name in self.cameras])
        self.launcher: ModuleProcess | None = None
        self.added: list[ResourceEntry] = []

    def _executable(self) -> Path:
        if not self.module.executable_path:
            return REPO / "run.sh"
        path = Path(self.module.executable_path).expanduser()
        path = path if path.is_absolute() else self.config.source.parent / path
        if not path.is_file():
            raise self.config.problem((*self.module.path, "executable_path"), f"no such file: {path}")
        return path.resolve()

    @property
    def module_process(self) -> ModuleProcess:
        if self.launcher is None:
            raise LaunchError("the module is not started")
        return self.launcher

    def start(self) -> None:
        if self.module.kind == "registry" and self.module.module_id:
            print(f"local: module {self.module.name!r} is the registry module {self.module.module_id!r}"
                  f"{f' (version {self.module.version})' if self.module.version else ''}: this checkout "
                  f"({self.executable}) stands in for it", file=sys.stderr)
        others = [m.name for m in self.config.modules if m is not self.module]
        home = os.environ.get("VIAM_HOME") or str(Path.home() / ".viam")
        self.launcher = ModuleProcess(executable=self.executable, name=self.module.name, env=self.module.env,
                                      log_level=self.module.log_level or None, socket_dir=self.socket_dir,
                                      output=self.log.file, viam_home=home)
        self.launcher.wait_for_socket()
        self.launcher.ready(self.parent.address)
        handlers = self.launcher.handlers
        self.launcher.check_reflection()
        served = {(api, model) for api, models in handlers.items() for model in models}
        ours = [r for r in self.config.resources if (r.api, r.model) in served]
        namespaces = {model.split(":")[0] for _, model in served}
        problems: list[ConfigProblem] = list(self.problems)
        skipped: list[str] = []
        for r in self.config.resources:
            if r in ours or (r.api == str(CAMERA_API) and (r.name in self.cameras or r.model == IMAGE_FILE)):
                continue  # an image_file camera without pictures is a problem (make_cameras), not a skip
            if r.api in handlers and r.model.split(":")[0] in namespaces:  # ours, misspelt
                problems.append(self.config.problem((*r.path, "model"), f"module {self.module.name!r} does not serve "
                                                    f"{r.model!r} for {r.api}; it serves {', '.join(handlers[r.api])}"))
                continue
            skipped.append(f"{r.name} ({r.api.rsplit(':', 1)[-1]} {r.model})")
        if skipped:
            print(f"local: skipped, the stand-in cannot play them: {', '.join(skipped)}"
                  + (f"; other modules not started: {', '.join(others)}" if others else ""), file=sys.stderr)
        deps: dict[str, list[str]] = {}
        for r in ours:
            try:
                deps[r.full_name] = self._dependencies(r)
            except ConfigProblem as exc:
                problems.append(exc)
        raise_all(problems)
        for entry in _in_order(self.config, ours, deps):
            try:
                self.module_process.add_config(_config(entry), deps[entry.full_name])
            except grpc.RpcError as exc:
                raise locate(self.config, entry, exc, "AddResource") from None
            self.added.append(entry)
            # Clients of the stand-in reach the resource as through viam-server: listed, and calls routed.
            service = self.module_process.proto_services.get(entry.api)
            if service and self.module_process.channel is not None:
                self.parent.route(entry.full_name, service, self.module_process.channel)
            else:
                self.parent.add_resources([entry.full_name])

    def _dependencies(self, entry: ResourceEntry) -> list[str]:
        """Full names of what ``entry`` needs: ValidateConfig's answer plus ``depends_on``."""
        try:
            reply = self.module_process.validate_config(_config(entry))
            required, optional = list(reply.dependencies), list(reply.optional_dependencies)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.UNIMPLEMENTED:  # a module without ValidateConfig declares nothing
                raise locate(self.config, entry, exc, "ValidateConfig") from None
            required, optional = [], []
        names = [(n, True) for n in (*required, *entry.depends_on)] + [(n, False) for n in optional]
        result: list[str] = []
        for name, needed in names:
            found = self.config.by_name(name)
            camera = name.removeprefix(f"{CAMERA_API}/")
            if not found and camera in self.cameras:  # a camera made from --images alone
                result.append(f"{CAMERA_API}/{camera}")
                continue
            if len(found) > 1 and "/" not in name:
                raise self._where(entry, name, f"{name!r} is ambiguous: {', '.join(f.full_name for f in found)}")
            if found and found[0].full_name not in result:
                result.append(found[0].full_name)
            elif not found and needed:
                raise self._where(entry, name, f"{entry.name!r} depends on {name!r}, which is not in the config")
        return result

    def _where(self, entry: ResourceEntry, name: str, message: str) -> ConfigProblem:
        """Point at the attribute (or depends_on entry) that names ``name``."""
        for key, value in entry.attributes.items():
            if value == name:
                return self.config.problem((*entry.path, "attributes", key), message)
        if name in entry.depends_on:
            return self.config.problem((*entry.path, "depends_on", entry.depends_on.index(name)), message)
        return self.config.problem(entry.path, message)

    def close(self, budget_s: float = 20.0) -> int | None:
        """RemoveResource for each resource (dependents first, 20 s in all), then stop the module and the parent."""
        deadline = time.monotonic() + budget_s
        for entry in reversed(self.added):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.launcher is None or not self.launcher.alive():
                break
            try:
                self.launcher.remove(entry.full_name, timeout=min(30.0, remaining))
            except grpc.RpcError as exc:
                print(f"local: RemoveResource {entry.full_name}: {exc.code().name}: {exc.details()}", file=sys.stderr)
        self.added.clear()
        code = self.launcher.stop()[0] if self.launcher is not None else None
        if self.launcher is not None:
            self.launcher.close()
        self.parent.stop()
        shutil.rmtree(self.socket_dir, ignore_errors=True)
        return code


def _this_module(config: RobotConfig) -> ModuleEntry:
    """The module this checkout plays: the one local module with an executable, else the first registry module
    (a config from the Viam app names this module by its registry id), else the first one."""
    local = [m for m in config.modules if m.kind == "local" and m.executable_path]
    registry = [m for m in config.modules if m.kind == "registry"]
    chosen = (local or registry or list(config.modules) or [DEFAULT_MODULE])[0]
    return chosen


def _config(entry: ResourceEntry) -> app_pb2.ComponentConfig:
    return component_config(entry.name, (entry.api, entry.model), entry.attributes, depends_on=tuple(entry.depends_on),
                            log_level=entry.log_level)


def _in_order(config: RobotConfig, entries: Sequence[ResourceEntry],
              deps: Mapping[str, Sequence[str]]) -> list[ResourceEntry]:
    """Dependencies before dependents (dependencies outside ``entries`` are served by the parent)."""
    by_name = {e.full_name: e for e in entries}
    ordered: list[ResourceEntry] = []
    state: dict[str, str] = {}

    def visit(entry: ResourceEntry, chain: tuple[str, ...]) -> None:
        if state.get(entry.full_name) == "done":
            return
        if state.get(entry.full_name) == "visiting":
            raise config.problem(entry.path, f"dependency cycle: {' -> '.join((*chain, entry.full_name))}")
        state[entry.full_name] = "visiting"
        for dep in deps[entry.full_name]:
            if dep in by_name:
                visit(by_name[dep], (*chain, entry.full_name))
        state[entry.full_name] = "done"
        ordered.append(entry)

    for entry in entries:
        visit(entry, ())
    return ordered

