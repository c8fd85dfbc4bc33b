"""``python -m devkit.local demo|local ...`` (what ``./run.sh demo`` and ``./run.sh local`` run).

local CONFIG: read the robot config, start the module as viam-server would, serve cameras from image files (or the
frames of a video), then either run every vision service over every image (a table, annotated PNGs, index.html and
results.jsonl in --out; --json prints the JSON lines instead of the table) or, with --serve, keep serving so any
Viam SDK client can connect to the stand-in's socket as to viam-server. Ctrl-C or SIGTERM stops cleanly either way.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import TextIO

import grpc

from devkit.local import demo, robot_config
from devkit.local.robot import LocalRobot, ModuleLog, make_cameras, make_depth_cameras
from devkit.local.robot_config import ConfigProblem, RobotConfig
from devkit.local.runner import Runner, Target, properties
from devkit.local.video import DEFAULT_MAX_FRAMES, VideoInputs
from devkit.standin.launcher import LaunchError
from module.resource.names import CAMERA_API, VISION_API


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="run.sh", description="Try the module without a robot.")
    sub = parser.add_subparsers(dest="command", required=True)
    local = sub.add_parser("local", help="run a robot config's vision services over images, or --serve")
    local.add_argument("config", type=Path, help="robot config, .json or .yaml")
    local.add_argument("--serve", action="store_true", help="keep serving for SDK clients instead of running once")
    local.add_argument("--camera", help="the camera --images feeds and the vision services read")
    local.add_argument("--vision", help="run only this vision service")
    local.add_argument("--packages", type=Path, metavar="DIR",
                       help="where ${packages.NAME} and ${packages.ml_model.NAME} point: DIR/NAME/ holds that "
                            "package's files (viam-server downloads them; here you put them there)")
    demo_parser = sub.add_parser("demo", help="the example config with the demo's images and models")
    demo_parser.add_argument("--model", help="a .tflite detector or classifier to use instead of the generated ones")
    demo_parser.add_argument("--synthetic", action="store_true",
                             help="generated pictures through generated colour models instead of the shipped ones")
    for p in (local, demo_parser):
        p.add_argument("--images", nargs="+", metavar="PATH",
                       help="image files, folders, glob patterns or video files (video: pip install av)")
        p.add_argument("--out", type=Path, default=Path("out"),
                       help="where annotated images, index.html and results.jsonl go (default: out/)")
        p.add_argument("--json", action="store_true",
                       help="print every result as a JSON line on stdout (the table goes to stderr)")
        p.add_argument("--max-frames", type=int, default=DEFAULT_MAX_FRAMES, metavar="N",
                       help=f"decode at most N frames of each video (default {DEFAULT_MAX_FRAMES})")
        p.add_argument("--executable", type=Path, help="start this instead of the module's executable_path")
    return parser.parse_args(argv)


def _raise_interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _images_camera(config: RobotConfig, chosen: str | None) -> str:
    """The camera --images feeds: --camera, else the only camera of the config, else the only one the vision
    services read."""
    if chosen:
        return chosen
    cameras = [r.name for r in config.resources if r.api == str(CAMERA_API)]
    read = list(dict.fromkeys(str(r.attributes.get("camera_name")) for r in config.resources
                              if r.api == str(VISION_API) and r.attributes.get("camera_name")))
    if len(cameras) > 1 and len(read) == 1:
        return read[0]
    if len(cameras) > 1:
        raise ConfigProblem("--images", None, (), f"the config has several cameras ({', '.join(cameras)}): "
                            "say which one the images are for with --camera")
    return cameras[0] if cameras else "cam"


def _targets(robot: LocalRobot, only: str | None, camera: str | None) -> list[Target]:
    visions = [r for r in robot.added if r.api == str(VISION_API) and (only is None or r.name == only)]
    if not visions:
        names = [r.name for r in robot.added if r.api == str(VISION_API)]
        raise ConfigProblem(str(robot.config.source), None, (), f"no vision service {only!r} in the config" if only
                            else "the config has no vision service of the module to run"
                            + (f" (vision services: {', '.join(names)})" if names else ""))
    targets = []
    for entry in visions:
        props = properties(robot.module_process.channel, entry.name)
        name = camera or str(entry.attributes.get("camera_name") or props.default_camera or "")
        if not name and len(robot.cameras) == 1:
            name = next(iter(robot.cameras))
        if name not in robot.cameras:
            why = f"there is no camera {name!r}" if name else "set camera_name or pass --camera"
            if name and robot.config.by_name(name):
                why = (f"camera {name!r} is one the stand-in cannot play (no image files): give it pictures with "
                       f"--images PATH" + (" --camera NAME" if len(robot.config.by_name(name)) > 1 else ""))
            raise robot.config.problem((*entry.path, "attributes"), f"vision service {entry.name!r}: {why}")
        targets.append(Target(entry.name, name, props.detections_supported, props.classifications_supported,
                              props.object_point_clouds_supported and name in robot.depth))
    return targets


def _serve(robot: LocalRobot) -> int:
    launcher = robot.module_process
    print(f"serving module {robot.module.name!r} (pid {launcher.proc.pid})\n"
          f"  robot socket:  {robot.parent.address}  <- connect SDK clients here, as to viam-server:\n"
          f"                 RobotClient.at_address(socket, RobotClient.Options(dial_options=\n"
          f"                     DialOptions(disable_webrtc=True, insecure=True)))\n"
          f"  resources:     {', '.join(r.full_name for r in robot.added)}\n"
          f"  cameras:       "
          + ", ".join(f"{n} [{len(s.files)} images, cycling]" for n, s in robot.cameras.items())
          + f"\n  module socket: {launcher.socket} (the module alone, as viam-server sees it)"
          f"\n  module log:    {robot.log.path}\nCtrl-C to stop.", flush=True)
    try:
        while launcher.alive():
            time.sleep(0.5)
    except KeyboardInterrupt as exc:  # the way to stop serving: not an error
        print(f"local: {exc}: stopping", file=sys.stderr)
        return 0
    print(f"local: the module exited (code {launcher.proc.returncode}); "
          f"see {robot.log.path}", file=sys.stderr)
    return 1


def run(config: RobotConfig, args: argparse.Namespace, images: list[str] | None,
        problems: list[ConfigProblem] | None = None) -> int:
    """Start the robot and run (or serve). ``problems`` found so far are reported together with the cameras' and
    the module's (ValidateConfig), before any resource is added."""
    problems = list(problems or [])
    camera_for_images = _images_camera(config, getattr(args, "camera", None)) if images else None
    videos = VideoInputs(args.out / "frames", args.max_frames)
    cameras = make_cameras(config, {camera_for_images: images} if camera_for_images and images else {}, videos,
                           problems)
    for video in videos.videos.values():
        print(f"local: {video.source.name}: {len(video.frames)} frames at {float(video.fps):.3g} fps"
              + (f" (the first {len(video.frames)} only: --max-frames)" if video.truncated else ""), file=sys.stderr)
    log = ModuleLog(args.out / "module.log")
    try:
        robot = LocalRobot(config, cameras, log, executable=args.executable.resolve() if args.executable else None,
                           depth=make_depth_cameras(config), problems=problems)
    except ConfigProblem:
        log.close()
        raise
    try:
        robot.start()
        if getattr(args, "serve", False):
            return _serve(robot)
        targets = _targets(robot, getattr(args, "vision", None), getattr(args, "camera", None))
        pid = robot.module_process.proc.pid
        print(f"local: module {robot.module.name!r} (pid {pid}) serves {len(robot.added)} resources; running "
              f"{', '.join(t.name for t in targets)}", file=sys.stderr, flush=True)
        with open(args.out / "results.jsonl", "w") as results:
            lines = _Tee(results, sys.stdout) if args.json else results
            runner = Runner(robot.module_process.channel, robot.cameras, args.out, json_lines=lines,
                            videos=videos, stdout=sys.stderr if args.json else sys.stdout, depth=robot.depth)
            started = time.monotonic()
            outcome = runner.run(targets)
            runner.summary(outcome, time.monotonic() - started)
        return 1 if outcome.errors else 0
    except KeyboardInterrupt as exc:
        print(f"local: {exc or 'interrupted'}: stopping", file=sys.stderr)
        return 130
    except LaunchError as exc:
        print(f"local: {exc}\nlocal: the end of the module's output ({log.path}):\n{log.tail()}", file=sys.stderr)
        return 1
    except grpc.RpcError as exc:
        print(f"local: the module failed: {exc.code().name}: {exc.details()}\nlocal: module output: {log.path}",
              file=sys.stderr)
        return 1
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)  # a second Ctrl-C must not leave the module behind
        robot.close()
        log.close()


class _Tee:
    """Writes to several text streams (results.jsonl and stdout with --json)."""

    def __init__(self, *streams: TextIO) -> None:
        self._streams = streams

    def write(self, text: str) -> int:
        for stream in self._streams:
            stream.write(text)
        return len(text)

    def flush(self) -> None:
        for stream in self._streams:
            stream.flush()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _raise_interrupt)
    try:
        if args.command == "demo":
            images = demo.demo_images(args.images, args.out, args.synthetic)
            demo.announce(images, args.model, args.out, args.synthetic)
            return run(demo.demo_config(args.model, args.out, args.synthetic), args, images)
        config, problems = robot_config.load_collecting(args.config, args.packages)
        return run(config, args, args.images, problems)
    except ConfigProblem as exc:
        for line in str(exc).splitlines():
            print(f"local: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
