"""The benchmark cases. Each returns a JSON-able dict; bench/__main__.py runs them in order and prints the table."""

from __future__ import annotations

import importlib.metadata
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import PIL.Image

from bench import bare
from bench.stats import summary, time_calls
from module import tensors
from module.gen.module.v1 import module_pb2, module_pb2_grpc
from module.gen.service.mlmodel.v1 import mlmodel_pb2 as mlpb
from module.gen.service.mlmodel.v1 import mlmodel_pb2_grpc
from module.gen.service.vision.v1 import vision_pb2 as vpb
from module.gen.service.vision.v1 import vision_pb2_grpc
from module.server import CHANNEL_OPTIONS
from tests.harness import MLMODEL, VISION, ModuleProcess, component_config, short_tempdir

REPO = Path(__file__).resolve().parents[1]
TESTDATA = REPO.parent / "shared" / "testdata"
SSD = TESTDATA / "models" / "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite"
COCO_LABELS = TESTDATA / "labels" / "coco_labels.txt"
SOURCE_PHOTO = TESTDATA / "images" / "cats_and_dogs.jpg"
NO_PARENT = {"VIAM_NO_MODULE_PARENT": "true"}
# One interpreter per core, one thread each: what the throughput target asks for; latency cases use the same.
SSD_ATTRS = {"model_path": str(SSD), "num_threads": 1, "pool_size": 2}
SDK_MLMODEL = ("rdk:service:mlmodel", "bench-sdk:mlmodel:tflite_cpu")
SDK_VISION = ("rdk:service:vision", "bench-sdk:vision:mlmodel")


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# --- environment -----------------------------------------------------------------------------------------------------

def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine() -> dict[str, Any]:
    cpu = ""
    flags: list[str] = []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and not cpu:
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = line.split(":", 1)[1].split()
    except OSError:
        pass
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""

    return {
        "git_commit": git("rev-parse", "--short", "HEAD"),
        "git_uncommitted_module_files": git("status", "--porcelain", "module", "bench").splitlines(),
        "cpu": cpu or platform.processor(), "cores": os.cpu_count(),
        "cpu_flags": sorted(f for f in flags if f in {"avx2", "avx512f", "avx512_vnni", "avx_vnni", "fma", "sse4_2"}),
        "platform": platform.platform(), "python": platform.python_version(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "packages": {d: _version(d) for d in ("ai-edge-litert", "tflite-runtime", "numpy", "pillow", "grpcio",
                                               "protobuf")},
    }


def venv_python(*names: str, needs: tuple[str, ...]) -> str | None:
    """The first of the repo's venvs that can import every module in ``needs``."""
    for name in names:
        python = REPO / name / "bin" / "python"
        if python.exists():
            probe = subprocess.run([str(python), "-c", "import " + ", ".join(needs)], capture_output=True)
            if probe.returncode == 0:
                return str(python)
    return None


def make_jpeg(out_dir: Path) -> Path:
    """A 640x480 JPEG (quality 90) made from a test-data photo with detectable animals."""
    path = out_dir / "frame_640x480.jpg"
    with PIL.Image.open(SOURCE_PHOTO) as img:
        img.convert("RGB").resize((640, 480), PIL.Image.Resampling.BILINEAR).save(path, "JPEG", quality=90)
    return path


def real_models() -> list[Path]:
    return sorted((TESTDATA / "models").glob("*.tflite"))


# --- 1. bare interpreter -------------------------------------------------------------------------------------------

def bare_interpreters(n: int, tflite_runtime_python: str | None) -> dict[str, Any]:
    models = real_models()
    out: dict[str, Any] = {"ai-edge-litert": [], "tflite-runtime": []}
    for model in models:
        for threads in (1, 2):
            log(f"bare ai-edge-litert {model.name} x{threads}")
            out["ai-edge-litert"].append(bare.measure("ai-edge-litert", str(model), threads, n))
    if tflite_runtime_python is None:
        out["tflite-runtime"] = {"skipped": "no .venv-tflite-runtime with tflite-runtime (see bench/README)"}
        return out
    log("bare tflite-runtime (separate venv, NumPy < 2)")
    done = subprocess.run([tflite_runtime_python, str(REPO / "bench" / "bare.py"), "tflite-runtime", str(n), "1,2",
                           *map(str, models)], capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        out["tflite-runtime"] = {"error": done.stderr[-2000:]}
    else:
        report = json.loads(done.stdout)
        out["tflite-runtime"] = report["results"]
        out["tflite_runtime_env"] = {"python": report["python"], "numpy": report["numpy"]}
    return out


# --- 2. in-process pipeline ------------------------------------------------------------------------------------------

def in_process_service(attrs: dict[str, Any], name: str) -> tuple[Any, Any]:
    """A TFLiteModel called ``name`` and a VisionService on it, in this process (no gRPC): (model, service)."""
    from module.mlmodel.config import TFLiteConfig
    from module.mlmodel.tflite_model import TFLiteModel
    from module.registry import ResourceContext
    from module.resource_names import MLMODEL_API
    from module.resources import ResourceManager
    from module.vision.config import VisionConfig
    from module.vision.service import VisionService

    resources = ResourceManager()
    model = TFLiteModel(TFLiteConfig.parse(attrs), name=name)
    resources.put(MLMODEL_API, name, model)
    service = VisionService.create(ResourceContext(name="vis", dependencies=(), resources=resources,
                                                   parent=lambda: None), VisionConfig.parse({"mlmodel_name": name}))
    return model, service


def in_process(jpeg: bytes, n: int) -> dict[str, Any]:
    """The module's own VisionService + TFLiteModel objects, called directly (no gRPC), plus a stage breakdown."""
    from module.vision import results
    from module.vision.imaging import open_image, to_model_input
    from module.vision.plan import make_plan
    from module.vision.tensorize import image_to_tensor

    model, service = in_process_service(SSD_ATTRS, "ssd")
    config = service.config
    found = service.detections(jpeg, "image/jpeg")
    out: dict[str, Any] = {"runtime": model.runtime.name, "detections_per_call": len(found)}
    # The floor, measured right here so the comparisons below share the machine's state.
    out["bare"] = bare.measure("ai-edge-litert", str(SSD), 1, n)
    out["get_detections_ms"] = summary(time_calls(lambda: service.detections(jpeg, "image/jpeg"), n))
    tensor = np.random.default_rng(0).integers(0, 255, size=(1, 300, 300, 3), dtype=np.uint8)
    out["infer_ms"] = summary(time_calls(lambda: model.infer({"x": tensor}), n))

    # Stage breakdown, same functions the service calls.
    plan = make_plan(model.metadata(), config)
    holder: dict[str, Any] = {}

    def decode_resize() -> None:
        img = open_image(jpeg, "image/jpeg")
        holder["size"] = img.size
        holder["rgb"], holder["letterbox"] = to_model_input(img, plan.input.size)

    def tensorize() -> None:
        holder["tensor"] = image_to_tensor(holder["rgb"], plan.input)

    def infer() -> None:
        holder["outputs"] = model.infer({plan.input_name: holder["tensor"]})

    def postprocess() -> None:
        assert plan.detector is not None
        results.detections(holder["outputs"], plan.detector, plan.labels, config.thresholds, model_size=(300, 300),
                           letterbox=holder["letterbox"], original_size=holder["size"])

    stages = {}
    for name, fn in (("decode_resize", decode_resize), ("tensorize", tensorize), ("infer", infer),
                     ("postprocess", postprocess)):
        stages[name] = summary(time_calls(fn, n))
    out["stages_ms"] = stages
    model.close()
    return out


def paired(jpeg: bytes, n: int) -> dict[str, Any]:
    """The target comparisons, interleaved call by call so every path sees the same machine state.

    This host's speed drifts by up to ~25 % from one few-second window to the next (the same bare ``invoke()``
    measured 17 ms and 22 ms minutes apart), so rows measured one after the other can differ by more than the
    1 ms the targets are about. Here each round times the bare interpreter, the in-process pipeline and the same
    calls over the socket back to back.
    """

    tensor = np.random.default_rng(0).integers(0, 255, size=(1, 300, 300, 3), dtype=np.uint8)
    interp = bare.interpreter_class("ai-edge-litert")(model_path=str(SSD), num_threads=1)
    interp.allocate_tensors()
    index = interp.get_input_details()[0]["index"]
    interp.set_tensor(index, tensor)
    model, service = in_process_service(SSD_ATTRS, "ssd")
    process = serving(SSD_ATTRS, "ssd", "vis")
    floor = FloorServer(SSD)
    try:
        assert process.channel is not None
        request = mlpb.InferRequest(name="ssd", input_tensors=tensors.encode_all({"image": tensor}))
        raw = tensor.tobytes()
        calls: dict[str, Callable[[], Any]] = {
            "bare_invoke_ms": interp.invoke,
            "in_process_infer_ms": lambda: model.infer({"image": tensor}),
            "floor_socket_invoke_ms": lambda: floor.invoke(raw, timeout=30),
            "socket_infer_ms": lambda: process.mlmodel.Infer(request, timeout=30),
            "in_process_get_detections_ms": lambda: service.detections(jpeg, "image/jpeg"),
            "socket_get_detections_ms": _detections_call(process.channel, "vis", jpeg),
        }
        samples: dict[str, list[float]] = {name: [] for name in calls}
        for _ in range(5):
            for call in calls.values():
                call()
        for _ in range(n):
            for name, call in calls.items():
                started = time.perf_counter()
                call()
                samples[name].append((time.perf_counter() - started) * 1000.0)
    finally:
        floor.close()
        process.close()
        model.close()
    out = {name: summary(values) for name, values in samples.items()}
    # Per-round differences: each pair was timed within ~50 ms, so the host's drift cancels out.
    for name, (a, b) in DIFFERENCES.items():
        out[name] = summary([x - y for x, y in zip(samples[a], samples[b], strict=True)])
    return out


DIFFERENCES: dict[str, tuple[str, str]] = {
    "floor_minus_bare_ms": ("floor_socket_invoke_ms", "bare_invoke_ms"),
    "socket_infer_minus_bare_ms": ("socket_infer_ms", "bare_invoke_ms"),
    "socket_infer_minus_floor_ms": ("socket_infer_ms", "floor_socket_invoke_ms"),
}


class FloorServer:
    """bench/floor_server.py in its own process: grpcio + a bare interpreter, no module code (the Infer floor)."""

    def __init__(self, model: Path) -> None:
        self.dir = short_tempdir()
        socket = os.path.join(self.dir, "floor.sock")
        self.proc = subprocess.Popen([sys.executable, str(REPO / "bench" / "floor_server.py"), socket, str(model)],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != b"ready":
            raise RuntimeError(f"bench/floor_server.py did not start (exit {self.proc.wait()})")
        self.channel = grpc.insecure_channel(f"unix:{socket}", options=CHANNEL_OPTIONS)
        self.invoke = self.channel.unary_unary("/bench.Floor/Invoke")

    def close(self) -> None:
        self.channel.close()
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def profile_in_process(jpeg: bytes, n: int = 200) -> str:
    """cProfile of the in-process GetDetections path; the top functions by own time."""
    import cProfile
    import pstats


    model, service = in_process_service(SSD_ATTRS, "ssd")
    service.detections(jpeg, "image/jpeg")
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(n):
        service.detections(jpeg, "image/jpeg")
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(15)
    model.close()
    return text.getvalue()


# --- module overhead, without the model's own cost --------------------------------------------------------------------

def constant_detector(out_dir: Path) -> Path:
    """A synthetic SSD-shaped detector (uint8 1x300x300x3 in, 10 fixed boxes out) whose invoke costs microseconds."""
    from tests.model_factory import detector_model

    boxes = [[0.05 * i, 0.1, 0.5 + 0.04 * i, 0.6] for i in range(10)]
    data = detector_model(boxes, [float(i) for i in range(10)], [0.9 - 0.05 * i for i in range(10)],
                          input_size=(300, 300), metadata=True, embedded_labels=[f"c{i}" for i in range(10)])
    path = out_dir / "constant_detector.tflite"
    path.write_bytes(data)
    return path


def overhead(model_path: Path, jpeg: bytes, n: int) -> dict[str, Any]:
    """What the module adds around ``invoke()``: the same calls as the SSD rows, on a model that costs ~nothing."""

    tensor = np.random.default_rng(0).integers(0, 255, size=(1, 300, 300, 3), dtype=np.uint8)
    interp = bare.interpreter_class("ai-edge-litert")(model_path=str(model_path), num_threads=1)
    interp.allocate_tensors()
    index = interp.get_input_details()[0]["index"]
    outputs = [d["index"] for d in interp.get_output_details()]

    def bare_call() -> None:
        interp.set_tensor(index, tensor)
        interp.invoke()
        for o in outputs:
            interp.get_tensor(o)

    out: dict[str, Any] = {"bare_set_invoke_get_ms": summary(time_calls(bare_call, n))}
    attrs = {"model_path": str(model_path), "num_threads": 1, "pool_size": 2}
    model, service = in_process_service(attrs, "const")
    out["in_process_infer_ms"] = summary(time_calls(lambda: model.infer({"x": tensor}), n))
    out["in_process_get_detections_ms"] = summary(time_calls(lambda: service.detections(jpeg, "image/jpeg"), n))
    model.close()

    process = serving(attrs, "const", "v")
    try:
        assert process.channel is not None
        infer_request = mlpb.InferRequest(name="const", input_tensors=tensors.encode_all({"image": tensor}))
        out["socket_infer_ms"] = summary(time_calls(lambda: process.mlmodel.Infer(infer_request, timeout=30), n))
        get = _detections_call(process.channel, "v", jpeg)
        out["socket_get_detections_ms"] = summary(time_calls(get, n))
        props = vpb.GetPropertiesRequest(name="v")
        out["socket_get_properties_ms"] = summary(time_calls(lambda: process.vision.GetProperties(props, timeout=30), n))
    finally:
        process.close()
    out["grpc_floor_270kb_ms"] = summary(grpc_floor(infer_request.SerializeToString(), n))
    return out


def grpc_floor(payload: bytes, n: int) -> list[float]:
    """A unary call carrying ``payload`` to a grpcio server (same options, Unix socket) whose handler does nothing:
    what grpcio itself costs to move the bytes, with no module code on either side."""
    from concurrent import futures

    folder = short_tempdir()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=CHANNEL_OPTIONS)
    handler = grpc.unary_unary_rpc_method_handler(lambda request, context: b"")
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("bench.Floor", {"Call": handler}),))
    socket = os.path.join(folder, "floor.sock")
    server.add_insecure_port(f"unix:{socket}")
    server.start()
    channel = grpc.insecure_channel(f"unix:{socket}", options=CHANNEL_OPTIONS)
    try:
        call = channel.unary_unary("/bench.Floor/Call")
        return time_calls(lambda: call(payload, timeout=30), n)
    finally:
        channel.close()
        server.stop(0)
        shutil.rmtree(folder, ignore_errors=True)


# --- 5. FlatTensor ---------------------------------------------------------------------------------------------------

def flat_tensor(repeats: int) -> dict[str, Any]:
    array = np.random.default_rng(0).standard_normal(1_000_000).astype(np.float32)
    encoded = tensors.encode(array)
    decoded = tensors.decode(encoded)
    assert np.array_equal(decoded, array)
    wire = encoded.SerializeToString()
    return {
        "elements": array.size,
        "encode_ms": summary(time_calls(lambda: tensors.encode(array), repeats, warmup=2)),
        "decode_ms": summary(time_calls(lambda: tensors.decode(encoded), repeats, warmup=2)),
        "encode_serialize_ms": summary(time_calls(lambda: tensors.encode(array).SerializeToString(), repeats, 2)),
        "parse_decode_ms": summary(time_calls(lambda: tensors.decode(mlpb.FlatTensor.FromString(wire)), repeats, 2)),
    }


# --- processes -------------------------------------------------------------------------------------------------------

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


# --- 3, 4, 6, 8: a module over its socket ----------------------------------------------------------------------------

def _detections_call(channel: grpc.Channel, name: str, jpeg: bytes) -> Callable[[], Any]:
    stub = vision_pb2_grpc.VisionServiceStub(channel)
    request = vpb.GetDetectionsRequest(name=name, image=jpeg, mime_type="image/jpeg")
    return lambda: stub.GetDetections(request, timeout=30)


def throughput(address: str, name: str, jpeg: bytes, clients: int, seconds: float) -> dict[str, Any]:
    """Calls per second with ``clients`` threads, each with its own channel, calling back to back."""
    channels = [grpc.insecure_channel(f"unix:{address}", options=CHANNEL_OPTIONS) for _ in range(clients)]
    calls = [_detections_call(c, name, jpeg) for c in channels]
    for call in calls:
        for _ in range(3):
            call()
    counts = [0] * clients
    barrier = threading.Barrier(clients + 1)
    stop_at: list[float] = [0.0]

    def worker(i: int) -> None:
        barrier.wait()
        while time.perf_counter() < stop_at[0]:
            calls[i]()
            counts[i] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    stop_at[0] = time.perf_counter() + seconds
    started = time.perf_counter()
    barrier.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    for c in channels:
        c.close()
    return {"clients": clients, "calls": sum(counts), "seconds": round(elapsed, 2),
            "calls_per_s": round(sum(counts) / elapsed, 2)}


def over_socket(process: Any, pid: int, jpeg: bytes, n: int, memory_calls: int, tput_seconds: float,
                vision: str = "vis", mlmodel: str = "ssd", with_infer: bool = True) -> dict[str, Any]:
    """Latency (grpcio client), throughput at 1 and 2 clients and memory of a module already serving ``vision``."""
    assert process.channel is not None
    get = _detections_call(process.channel, vision, jpeg)
    out: dict[str, Any] = {"detections_per_call": len(get().detections)}
    done = 1
    for _ in range(99):
        get()
    done += 99
    out["memory"] = {"rss_kb_after_100": _rss_kb(pid), "fds_after_100": _fds(pid)}
    out["get_detections_ms"] = summary(time_calls(get, n))
    done += n + 5
    if with_infer:
        stub = mlmodel_pb2_grpc.MLModelServiceStub(process.channel)
        tensor = np.random.default_rng(0).integers(0, 255, size=(1, 300, 300, 3), dtype=np.uint8)
        request = mlpb.InferRequest(name=mlmodel, input_tensors=tensors.encode_all({"image": tensor}))
        out["infer_ms"] = summary(time_calls(lambda: stub.Infer(request, timeout=30), n))
    one = throughput(process.socket, vision, jpeg, 1, tput_seconds)
    two = throughput(process.socket, vision, jpeg, 2, tput_seconds)
    done += one["calls"] + two["calls"] + 9
    out["throughput"] = {"1_client": one, "2_clients": two,
                         "scaling": round(two["calls_per_s"] / one["calls_per_s"], 3) if one["calls_per_s"] else None}
    remaining = max(0, memory_calls - done)
    log(f"memory: {remaining} more GetDetections (total {max(done, memory_calls)})")
    for _ in range(remaining):
        get()
    done += remaining
    rss = _rss_kb(pid)
    out["memory"].update({"calls": done, f"rss_kb_after_{done}": rss, "rss_kb_after_all": rss, "fds_after_all": _fds(pid),
                          "rss_growth_mb": round((rss - out["memory"]["rss_kb_after_100"]) / 1024, 2)})
    return out


def ours(jpeg: bytes, n: int, memory_calls: int, tput_seconds: float, start_repeats: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    log("our module: start -> Ready")
    out["start_to_ready_ms"] = start_times(lambda: start_ours(False), start_repeats)
    out["start_to_ready_via_run_sh_ms"] = start_times(lambda: start_ours(True), start_repeats)
    process, _ = start_ours(False)
    try:
        started = time.perf_counter()
        process.add("ssd", MLMODEL, SSD_ATTRS)
        out["add_resource_ssd_ms"] = round((time.perf_counter() - started) * 1000, 1)
        started = time.perf_counter()
        process.add("vis", VISION, {"mlmodel_name": "ssd"}, deps=("rdk:service:mlmodel/ssd",))
        out["add_resource_vision_ms"] = round((time.perf_counter() - started) * 1000, 1)
        log("our module: latency, throughput, memory")
        out.update(over_socket(process, process.proc.pid, jpeg, n, memory_calls, tput_seconds))
    finally:
        process.close()
    return out


def sdk_alternative(python: str, jpeg: bytes, n: int, memory_calls: int, tput_seconds: float,
                    start_repeats: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    log("viam-sdk alternative: start -> Ready")
    out["start_to_ready_ms"] = start_times(lambda: start_sdk(python), start_repeats)
    process, _ = start_sdk(python)
    try:
        started = time.perf_counter()
        process.add("ssd", SDK_MLMODEL, {"model_path": str(SSD), "num_threads": 1})
        out["add_resource_ssd_ms"] = round((time.perf_counter() - started) * 1000, 1)
        process.add("vis", SDK_VISION, {"mlmodel_name": "ssd", "label_path": str(COCO_LABELS)})
        log("viam-sdk alternative: latency, throughput, memory")
        out.update(over_socket(process, process.proc.pid, jpeg, n, memory_calls, tput_seconds))
    except Exception:
        log(process.log()[-3000:])
        raise
    finally:
        process.close()
    return out


def sdk_client(python: str, target: str, jpeg_path: Path, n: int, sdk_python_for_alt: str | None) -> dict[str, Any]:
    """The official SDK client, run in the SDK venv, against ``target`` ("ours" or "sdk_alternative")."""
    if target == "ours":
        process: Any = ModuleProcess(env=NO_PARENT, log_level=None)
        process.wait_for_socket()
        _ready(process.module)
        process.add("ssd", MLMODEL, SSD_ATTRS)
        process.add("vis", VISION, {"mlmodel_name": "ssd"}, deps=("rdk:service:mlmodel/ssd",))
    else:
        assert sdk_python_for_alt is not None
        process, _ = start_sdk(sdk_python_for_alt)
        process.add("ssd", SDK_MLMODEL, {"model_path": str(SSD), "num_threads": 1})
        process.add("vis", SDK_VISION, {"mlmodel_name": "ssd", "label_path": str(COCO_LABELS)})
    try:
        argv = [python, str(REPO / "bench" / "sdk_client.py"), process.socket, "vis", "ssd", str(jpeg_path), str(n)]
        if target == "ours":
            argv.append("--tensor-helpers")
        done = subprocess.run(argv, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            return {"error": done.stderr[-2000:]}
        return json.loads(done.stdout)
    finally:
        process.close()
