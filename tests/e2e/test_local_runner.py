"""The local runner and the demo, end to end: real module processes started as viam-server starts them, cameras
served from image files, vision calls through the module's socket, tables and annotated images checked."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import yaml
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from PIL import Image

from devkit.local import robot_config
from devkit.local.synthetic import PICTURES
from devkit.testdata import require_testdata
from module.gen.service.vision.v1 import vision_pb2, vision_pb2_grpc
from tests.e2e.test_sdk_compat import sdk_python  # noqa: F401 - the fixture: .venv-sdk with viam-sdk

REPO = Path(__file__).resolve().parents[2]
SSD = "models/coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite"
_BOX = re.compile(r"^(?P<label>\S+)\s+(?P<conf>\d\.\d\d)\s+\((?P<box>\d+, \d+, \d+, \d+)\)")

Run = tuple[subprocess.CompletedProcess[str], Path]  # a finished runner and its --out folder


@dataclass(frozen=True)
class Row:
    service: str
    label: str
    confidence: float | None
    box: tuple[int, ...] | None


def parse_table(stdout: str) -> dict[str, list[Row]]:
    """image -> rows, using the header's column positions (image, service, then label/conf/box)."""
    lines = stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("image "))
    service_at, label_at = lines[header].index("service"), lines[header].index("label")
    table: dict[str, list[Row]] = {}
    image = service = ""
    for line in lines[header + 1:]:
        if not line.strip():
            break
        image = line[:service_at].strip() or image
        service = line[service_at:label_at].strip() or service
        match = _BOX.match(line[label_at:])
        if match:
            box = tuple(int(v) for v in match["box"].split(", "))
            table.setdefault(image, []).append(Row(service, match["label"], float(match["conf"]), box))
        else:
            cells = line[label_at:].split()
            confidence = float(cells[1]) if len(cells) > 2 and cells[2] == "-" else None
            table.setdefault(image, []).append(Row(service, cells[0], confidence, None))
    return table


def iou(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    inter = max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / area if area else 0.0


def edge_changed(original: Path, annotated: Path, box: tuple[int, ...]) -> float:
    """Share of the pixels on the box's left edge that differ between the original and the annotated copy."""
    before = np.asarray(Image.open(original).convert("RGB"), np.int16)
    after = np.asarray(Image.open(annotated).convert("RGB"), np.int16)[: before.shape[0], : before.shape[1]]
    x, y0, y1 = min(box[0] + 1, before.shape[1] - 1), box[1], min(box[3], before.shape[0])
    return float(np.mean(np.abs(before[y0:y1, x] - after[y0:y1, x]).sum(axis=1) > 30))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wrapper executable that starts this checkout's module with the test interpreter (as run.sh would)."""
    root = tmp_path_factory.mktemp("local")
    wrapper = root / "module.sh"
    # cd: run.sh's folder is the module's working directory, where relative model paths (config/demo.json) resolve
    wrapper.write_text(f'#!/bin/sh\ncd "{REPO}"\nPYTHONPATH="{REPO}" exec "{sys.executable}" -u -m module "$@"\n')
    wrapper.chmod(0o755)
    (root / "home").mkdir()
    return root


def local(workdir: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VIAM_HOME": str(workdir / "home"), "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "devkit.local", *args, "--executable", str(workdir / "module.sh")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def demo_run(workdir: Path) -> Run:
    out = workdir / "demo"
    result = local(workdir, "demo", "--synthetic", "--out", str(out))
    assert result.returncode == 0, result.stderr
    return result, out


def test_demo_finds_every_synthetic_shape_and_annotates_it(demo_run: Run) -> None:
    result, out = demo_run
    table = parse_table(result.stdout)
    assert sorted(table) == sorted(f"{p.name}.png" for p in PICTURES)
    for picture in PICTURES:
        rows = table[f"{picture.name}.png"]
        boxes = {r.label: r for r in rows if r.service == "detector" and r.box}
        assert set(boxes) == {s.colour for s in picture.shapes}, rows
        for shape in picture.shapes:
            found = boxes[shape.colour].box
            assert found is not None and iou(found, shape.box) > 0.8, (picture.name, shape, found)
        classes = [r for r in rows if r.service == "classifier"]
        assert classes and classes[0].label in {s.colour for s in picture.shapes}
        annotated = out / f"{picture.name}.png"
        for row in boxes.values():
            assert row.box is not None
            assert edge_changed(out / "synthetic" / f"{picture.name}.png", annotated, row.box) > 0.9
    assert f"[{len(PICTURES)}/{len(PICTURES)}]" in result.stderr
    assert f"annotated images: {out}/" in result.stdout


def test_real_ssd_finds_the_cat(workdir: Path) -> None:
    data = require_testdata(SSD, "images/cat.bmp")
    out = workdir / "ssd"
    result = local(workdir, "demo", "--model", str(data / SSD), "--images", str(data / "images/cat.bmp"),
                   "--out", str(out))
    assert result.returncode == 0, result.stderr
    rows = parse_table(result.stdout)["cat.bmp"]
    top = max(rows, key=lambda r: r.confidence or 0)
    assert top.label == "cat" and top.confidence is not None and top.confidence >= 0.7, rows
    # reference box [ymin, xmin, ymax, xmax] = [0.131, 0.091, 0.977, 0.708] of 512x341
    assert top.box is not None and iou(top.box, (47, 45, 362, 333)) > 0.9
    assert edge_changed(data / "images/cat.bmp", out / "cat.png", top.box) > 0.9


def test_depth_camera_from_files_gives_3d_objects_and_draws_them(workdir: Path) -> None:
    # config/depth.json: pets.jpg + a PCD of the ray-cast scene (python -m devkit.depth_scene) as one depth camera.
    data = require_testdata(SSD, "images/pets.jpg")
    pcd = workdir / "pets.pcd"
    made = subprocess.run([sys.executable, "-m", "devkit.depth_scene", str(pcd)], cwd=REPO, capture_output=True,
                          text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert made.returncode == 0, made.stderr
    config = json.loads((REPO / "config/depth.json").read_text())
    camera = config["components"][0]["attributes"]
    camera["color_image_file_path"], camera["pointcloud_file_path"] = str(data / "images/pets.jpg"), str(pcd)
    config["services"][0]["attributes"]["model_path"] = str(data / SSD)
    path = workdir / "depth.json"
    path.write_text(json.dumps(config))
    out = workdir / "depth-out"
    result = local(workdir, "local", str(path), "--out", str(out))
    assert result.returncode == 0, result.stderr
    objects = re.findall(r"(\w+)\s+3D\s+(\d+\.\d\d) m, (\d+)x(\d+)x(\d+) mm", result.stdout)
    found = sorted((label, float(z)) for label, z, *_ in objects)
    assert [label for label, _ in found] == ["dog", "dog"], result.stdout
    # Box centres: the cut-out at 1.2 m, the 40 cm deep box from 1.8 m (its side is seen: centre about 2.0 m).
    np.testing.assert_allclose([z for _, z in found], [1.2, 2.0], atol=0.03)
    assert "point_cloud" in result.stdout and "outlier_removal" in result.stdout  # the module's 3D stages
    # The near dog's box (a thin cut-out 1.2 m away, behind the middle 80 % of its detection) is drawn where its
    # front face projects: about (134, 73) - (238, 267) on pets.jpg.
    assert edge_changed(data / "images/pets.jpg", out / "pets.png", (134, 75, 238, 265)) > 0.9


def _config(demo_out: Path) -> dict[str, Any]:
    """config/demo.json with absolute paths to the demo run's models and pictures."""
    config: dict[str, Any] = json.loads((REPO / "config/demo.json").read_text())
    config["components"][0]["attributes"]["color_image_file_path"] = str(demo_out / "synthetic")
    for service, model in (("coco-ssd", "colour_detector"), ("mobilenet", "colour_classifier")):
        entry = next(s for s in config["services"] if s["name"] == service)
        entry["attributes"]["model_path"] = str(demo_out / "models" / f"{model}.tflite")
    return config


def _results(table: dict[str, list[Row]]) -> dict[str, list[tuple[str, str, float | None, tuple[int, ...] | None]]]:
    return {image: [(r.service, r.label, r.confidence, r.box) for r in rows] for image, rows in table.items()}


def test_yaml_config_gives_the_same_table(workdir: Path, demo_run: Run) -> None:
    yaml_config, json_config = (robot_config.load(REPO / f"config/demo.{kind}") for kind in ("yaml", "json"))
    assert yaml_config.resources == json_config.resources and yaml_config.modules == json_config.modules
    path = workdir / "robot.yaml"
    path.write_text(yaml.safe_dump(_config(demo_run[1]), sort_keys=False))
    result = local(workdir, "local", str(path), "--out", str(workdir / "yaml-out"))
    assert result.returncode == 0, result.stderr
    assert _results(parse_table(result.stdout)) == _results(parse_table(demo_run[0].stdout))


@pytest.mark.parametrize("suffix, typo, attribute", [
    (".json", "mlmodel_nme", "mlmodel_name"),  # a required attribute misspelt: the module says it is missing
    (".yaml", "default_minimum_confidense", "default_minimum_confidence"),  # an optional one: unknown attribute
])
def test_typo_in_attribute_names_file_line_and_attribute(workdir: Path, demo_run: Run, suffix: str, typo: str,
                                                         attribute: str) -> None:
    config = _config(demo_run[1])
    attributes = config["services"][1]["attributes"]
    attributes[typo] = attributes.pop(attribute)
    path = workdir / f"typo{suffix}"
    path.write_text(json.dumps(config, indent=2) if suffix == ".json" else yaml.safe_dump(config, sort_keys=False))
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if typo in text)
    result = local(workdir, "local", str(path), "--out", str(workdir / "typo-out"))
    assert result.returncode == 2
    assert f"{path}:{line}: services[1].attributes.{typo}: " in result.stderr, result.stderr


def test_config_syntax_and_shape_errors_name_the_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{\n  "services": [\n    {"name": "x",}\n  ]\n}\n')
    with pytest.raises(robot_config.ConfigProblem, match=rf"^{re.escape(str(broken))}:3:18: invalid JSON"):
        robot_config.load(broken)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("services:\n  - name: det\n    api: rdk:service:vision\n    model: a:b:c\n    attributes: [1]\n")
    where = re.escape(f"{wrong}:5: services[0].attributes: must be an object")
    with pytest.raises(robot_config.ConfigProblem, match=f"^{where}"):
        robot_config.load(wrong)


def _wait_for(process: subprocess.Popen[str], text: str, timeout: float = 60) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
        lines.append(line)
        if text in line:
            return lines
    raise AssertionError(f"no {text!r} in {lines}")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_serve_answers_sdk_calls_and_a_signal_leaves_no_module_behind(workdir: Path, demo_run: Run, sig: int) -> None:
    path = workdir / "serve.json"
    path.write_text(json.dumps(_config(demo_run[1])))
    env = {**os.environ, "VIAM_HOME": str(workdir / "home"), "PYTHONPATH": str(REPO)}
    process = subprocess.Popen([sys.executable, "-m", "devkit.local", "local", str(path), "--serve", "--out",
                                str(workdir / "serve-out"), "--executable", str(workdir / "module.sh")],
                               cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = "".join(_wait_for(process, "Ctrl-C to stop"))
        pid = int(re.search(r"\(pid (\d+)\)", lines)[1])  # type: ignore[index]
        socket = re.search(r"module socket: (\S+)", lines)[1]  # type: ignore[index]
        with grpc.insecure_channel(f"unix:{socket}") as channel:
            vision = vision_pb2_grpc.VisionServiceStub(channel)
            seen = {tuple(sorted(d.class_name for d in vision.GetDetectionsFromCamera(
                vision_pb2.GetDetectionsFromCameraRequest(name="detector", camera_name="cam"), timeout=30).detections))
                for _ in PICTURES}
        assert len(seen) == len(PICTURES)  # the camera cycles through the pictures
        process.send_signal(sig)
        assert process.wait(30) == 0
        assert not Path(f"/proc/{pid}").exists()
        assert not Path(socket).exists()
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


def test_ctrl_c_during_a_run_removes_the_resources_and_stops_the_module(workdir: Path, demo_run: Run) -> None:
    path = workdir / "long.json"
    path.write_text(json.dumps(_config(demo_run[1])))
    out = workdir / "long-out"
    env = {**os.environ, "VIAM_HOME": str(workdir / "home"), "PYTHONPATH": str(REPO)}
    pictures = [str(demo_run[1] / "synthetic")] * 200  # long enough to be interrupted
    process = subprocess.Popen([sys.executable, "-m", "devkit.local", "local", str(path), "--out", str(out), "--images",
                                *pictures, "--executable", str(workdir / "module.sh")],
                               cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        started = process.stderr.readline()
        pid = int(re.search(r"\(pid (\d+)\) serves 4 resources", started)[1])  # type: ignore[index]
        progress = process.stderr.readline()
        assert progress.startswith("[1/800]"), progress
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 130
        assert not Path(f"/proc/{pid}").exists()
        log = (out / "module.log").read_text()
        removed = set(re.findall(r"removed (rdk:service:\S+)", log))
        assert removed == {f"rdk:service:{api}/{name}" for api, name in (
            ("mlmodel", "coco-ssd"), ("vision", "detector"), ("mlmodel", "mobilenet"), ("vision", "classifier"))}
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


@pytest.fixture
def dot_venv() -> Iterator[Path]:
    if not (REPO / ".venv" / "bin" / "python").exists():
        pytest.skip("no .venv: ./run.sh has not set itself up in this checkout")
    yield REPO / ".venv"


def test_run_sh_demo(dot_venv: Path, tmp_path: Path) -> None:
    env = {**os.environ, "VIAM_HOME": str(tmp_path / "home")}
    result = subprocess.run([str(REPO / "run.sh"), "demo", "--synthetic", "--out", str(tmp_path)], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=280)
    assert result.returncode == 0, result.stderr
    table = parse_table(result.stdout)
    assert sorted(table) == sorted(f"{p.name}.png" for p in PICTURES)
    assert all(any(r.box for r in rows) for rows in table.values())
    assert all((tmp_path / f"{p.name}.png").is_file() for p in PICTURES)


def test_sdk_robot_client_reaches_the_modules_services_through_the_stand_in(
        workdir: Path, sdk_python: Path) -> None:  # noqa: F811 - the imported fixture
    """``--serve`` plays viam-server for clients: the official SDK connects with RobotClient.at_address to the
    printed robot socket, finds the services in ResourceNames, and its calls are routed to the module."""
    env = {**os.environ, "VIAM_HOME": str(workdir / "home"), "PYTHONPATH": str(REPO)}
    process = subprocess.Popen([sys.executable, "-m", "devkit.local", "local", str(REPO / "config/demo.json"), "--serve",
                                "--out", str(workdir / "sdk-out"), "--executable", str(workdir / "module.sh")],
                               cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = "".join(_wait_for(process, "Ctrl-C to stop"))
        socket = re.search(r"robot socket: +(\S+)", lines)[1]  # type: ignore[index]
        script = REPO / "tests/support/sdk_robot_script.py"
        done = subprocess.run([str(sdk_python), str(script), socket, "detector", "coco-ssd", "cam"],
                              capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr[-3000:]
        found = json.loads(done.stdout)
        assert found["resource_names"] == ["rdk:component:camera/cam", "rdk:service:mlmodel/coco-ssd",
                                           "rdk:service:mlmodel/mobilenet", "rdk:service:vision/classifier",
                                           "rdk:service:vision/detector"]
        # the camera's first picture is demo/images/cat.png (the reference: cat 0.7188 at 47, 45, 362, 333)
        [[label, confidence, *box]] = found["detections"]
        assert label == "cat" and confidence >= 0.7 and iou(tuple(box), (47, 45, 362, 333)) > 0.9
        assert found["do_command"]["mlmodel_name"] == "coco-ssd"
        assert found["metadata"]["inputs"] == [["image", "uint8", [1, 300, 300, 3]]]
        assert len(found["metadata"]["outputs"]) == 4
        assert found["camera"][0][0] in ("image/png", "image/jpeg")
        assert found["missing"] == "ResourceNotFoundError"
        with grpc.insecure_channel(f"unix:{socket}") as channel:  # a name no module serves: viam-server's answer
            with pytest.raises(grpc.RpcError) as error:
                vision_pb2_grpc.VisionServiceStub(channel).GetProperties(vision_pb2.GetPropertiesRequest(name="nope"),
                                                                         timeout=10)
            services = ProtoReflectionDescriptorDatabase(channel).get_services()  # tools such as grpcurl need it
        assert {"viam.robot.v1.RobotService", "viam.service.vision.v1.VisionService",
                "viam.service.mlmodel.v1.MLModelService", "viam.component.camera.v1.CameraService"} <= set(services)
        assert error.value.code() == grpc.StatusCode.NOT_FOUND
        assert "rdk:service:vision/nope" in (error.value.details() or "")
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


def test_config_from_the_viam_app_runs_with_packages_and_pictures(workdir: Path) -> None:
    """config/viam-app.json as the Viam app writes it: a registry module entry, ${packages.ml_model...} paths, a
    webcam, a transform camera, a data manager and data capture."""
    out = workdir / "app-out"
    result = local(workdir, "local", "config/viam-app.json", "--packages", "demo", "--images", "demo/images/pets.jpg",
                   "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("stands in for it") == 1 and "'tflite-py:tflite-module'" in result.stderr
    [skipped] = [line for line in result.stderr.splitlines() if "skipped" in line]
    assert "cropped (camera rdk:builtin:transform)" in skipped and "data_manager-1" in skipped
    assert "webcam" not in skipped  # --images feeds it: the camera the vision service reads
    rows = parse_table(result.stdout)["pets.jpg"]
    assert sorted(r.label for r in rows) == ["dog", "dog"]


def test_every_config_problem_is_reported_in_one_pass(workdir: Path, tmp_path: Path) -> None:
    config = tmp_path / "bad.json"
    config.write_text(json.dumps({
        "modules": [{"type": "registry", "name": "m"}],
        "components": [
            {"name": "cam", "api": "rdk:component:camera", "model": "rdk:builtin:image_file",
             "attributes": {"color_image_file_path": "/no/such/pictures"}},
            {"name": "bad name!", "api": "rdk:component:camera", "model": "webcam"}],
        "services": [
            {"name": "m1", "api": "rdk:service:mlmodel", "model": "tflite-py:mlmodel:tflite_cpu",
             "attributes": {"model_path": "${packages.ml_model.nothere}/x.tflite"}},
            {"name": "det", "api": "rdk:service:vision", "model": "tflite-py:vision:mlmodel",
             "attributes": {"mlmodel_name": "m1", "default_minimum_confidence": "high"}}]}, indent=2))
    text = config.read_text().splitlines()

    def line_of(needle: str) -> int:
        return next(i for i, line in enumerate(text, 1) if needle in line)

    result = local(workdir, "local", str(config), "--out", str(tmp_path / "out"))
    assert result.returncode == 2, result.stderr
    modules = line_of('"modules"')
    expected = [
        f"{config}:{modules + 1}: modules[0]: 'module_id' is required",  # the line of the entry's opening brace
        f"{config}:{line_of('/no/such')}: components[0].attributes.color_image_file_path: ",
        f"{config}:{line_of('bad name!')}: components[1].name: ",
        f"{config}:{line_of('nothere')}: services[0].attributes.model_path: ${{packages.ml_model.nothere}} "
        "needs the package's files: pass --packages DIR",
        f"{config}:{line_of('high')}: services[1].attributes.default_minimum_confidence: ",
    ]
    problems = [line.removeprefix("local: ") for line in result.stderr.splitlines() if line.startswith(f"local: {config}")]
    assert len(problems) == len(expected), result.stderr
    for problem, start in zip(problems, expected):
        assert problem.startswith(start), (problem, start)


def _write_video(path: Path, pictures: list[Path], frames_each: int) -> None:
    av = pytest.importorskip("av", reason="PyAV (the optional video extra) is not installed")
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=5)
        stream.width, stream.height, stream.pix_fmt = 512, 384, "yuv420p"
        for picture in pictures:
            rgb = Image.open(picture).convert("RGB").resize((512, 384))
            for _ in range(frames_each):
                for packet in stream.encode(av.VideoFrame.from_image(rgb)):
                    container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_video_in_annotated_video_and_json_lines_out(workdir: Path, tmp_path: Path) -> None:
    video = tmp_path / "walk.mp4"
    _write_video(video, [REPO / "demo/images/pets.jpg", REPO / "demo/images/parrot.jpg"], 3)
    out = tmp_path / "out"
    result = local(workdir, "local", "config/demo.json", "--vision", "detector", "--images", str(video), "--json",
                   "--out", str(out))
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["frame"] for r in records] == [1, 2, 3, 4, 5, 6] and {r["video"] for r in records} == {"walk.mp4"}
    assert all(set(r) >= {"image", "service", "ms", "detections", "classifications", "annotated"} for r in records)
    labels = [sorted(d["label"] for d in r["detections"]) for r in records]
    assert labels[:3] == [["dog", "dog"]] * 3 and labels[3:] == [["bird"]] * 3, labels
    box = records[0]["detections"][0]
    assert len(box["box"]) == 4 and 0.5 <= box["confidence"] <= 1
    assert (out / "results.jsonl").read_text().splitlines() == result.stdout.splitlines()
    assert "detector" in result.stderr  # the table went to stderr
    av = pytest.importorskip("av")
    with av.open(str(out / "walk-annotated.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 6
    assert 'src="walk-annotated.mp4"' in (out / "index.html").read_text()


def test_video_without_pyav_says_how_to_install_it(workdir: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "no-av"
    blocker.mkdir()
    (blocker / "av.py").write_text("raise ImportError('PyAV is not installed (blocked for this test)')\n")
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\0" * 64)
    env = {**os.environ, "VIAM_HOME": str(workdir / "home"), "PYTHONPATH": f"{blocker}:{REPO}"}
    result = subprocess.run([sys.executable, "-m", "devkit.local", "local", "config/demo.json", "--images", str(video),
                             "--out", str(tmp_path / "out"), "--executable", str(workdir / "module.sh")],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "video input needs PyAV" in result.stderr and "pip install av" in result.stderr


def test_gallery_shows_every_picture_with_its_results(workdir: Path, demo_run: Run) -> None:
    page = (demo_run[1] / "index.html").read_text()
    for picture in PICTURES:
        assert f'src="{picture.name}.png"' in page
    assert page.count("<table>") == len(PICTURES) and "nothing found" not in page
    records = [json.loads(line) for line in (demo_run[1] / "results.jsonl").read_text().splitlines()]
    assert {(Path(r["image"]).name, r["service"]) for r in records} == {
        (f"{p.name}.png", s) for p in PICTURES for s in ("detector", "classifier")}
