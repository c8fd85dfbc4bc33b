"""Soak: both services at full rate for N minutes; resident memory, file descriptors, threads and errors over time.

    python -m bench.soak --minutes 10            # the issue's run (default 10 minutes)
    python -m bench.soak --seconds 30 --models synthetic --json /tmp/soak.json

The module runs as viam-server runs it (``python -m module <socket>``, devkit/standin/launcher.py) next to a fake parent
(devkit/standin/parent.py) that serves a camera and takes the module's log entries. Client threads share one channel,
as viam-server does, and call back to back without pause:

* ``GetDetections`` with a 640x480 JPEG sent in the request;
* ``GetDetectionsFromCamera`` (the module fetches the frame from the parent);
* mlmodel ``Infer`` with the model's input tensor;
* a mix of ``CaptureAllFromCamera``, ``GetProperties``, ``DoCommand stats``, ``Metadata`` and ``GetStatus``.

Models: ``real`` uses ../shared/testdata's COCO SSD MobileNet (uint8 300x300), ``synthetic`` a constant detector
of the same input shape from devkit/models.py (much cheaper per call, so many more calls and allocations
per second: the harder test for leaks); ``auto`` (default) is real when the test data is there.

Verdict (exit code 0 only if all hold): no call failed; RSS after the warm-up (the first third of the run, at
most 60 s) stayed within ``--rss-limit-mb`` (default 10) of its value at the end of the warm-up; the number of open
file descriptors did not grow after the warm-up.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import PIL.Image

from devkit.standin.launcher import MLMODEL, VISION, ModuleProcess, short_tempdir
from devkit.standin.parent import FakeParent, frame
from devkit.testdata import TESTDATA
from module.gen.common.v1 import common_pb2
from module.gen.service.mlmodel.v1 import mlmodel_pb2
from module.gen.service.vision.v1 import vision_pb2
from module.mlmodel import flat_tensors
from module.resource.structs import dict_to_struct

SSD = TESTDATA / "models" / "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.tflite"
PHOTO = TESTDATA / "images" / "cats_and_dogs.jpg"
CALL_TIMEOUT_S = 30.0


@dataclass
class Sample:
    t: float  # seconds since the load started
    rss_mb: float
    fds: int
    threads: int
    calls: int
    errors: int


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    calls: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    error_examples: list[str] = field(default_factory=list)

    def total(self) -> tuple[int, int]:
        with self.lock:
            return sum(self.calls.values()), sum(self.errors.values())


def proc_status(pid: int) -> tuple[float, int, int]:
    """(VmRSS in MB, open fds, threads) of ``pid``."""
    rss_kb, threads = 0, 0
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss_kb = int(line.split()[1])
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    return rss_kb / 1024, len(os.listdir(f"/proc/{pid}/fd")), threads


def test_image(size: tuple[int, int] = (640, 480)) -> PIL.Image.Image:
    if PHOTO.exists():
        return PIL.Image.open(PHOTO).convert("RGB").resize(size)
    rng = np.random.default_rng(0)
    return PIL.Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def jpeg(img: PIL.Image.Image) -> bytes:
    out = io.BytesIO()
    img.save(out, "JPEG", quality=90)
    return out.getvalue()


def model_file(kind: str, directory: Path) -> tuple[str, str]:
    """(path, "real"/"synthetic") of the detector to serve."""
    if kind == "real" or (kind == "auto" and SSD.exists()):
        if not SSD.exists():
            raise SystemExit(f"--models real: {SSD} is missing")
        return str(SSD), "real"
    from devkit.models import detector_model

    path = directory / "synthetic-detector.tflite"
    path.write_bytes(detector_model([(0.1, 0.2, 0.5, 0.6), (0.5, 0.5, 0.9, 0.8)], [16, 17], [0.9, 0.7],
                                    input_size=(300, 300)))
    return str(path), "synthetic"


def run(seconds: float, *, threads: int = 4, models: str = "auto", sample_every: float = 5.0,
        rss_limit_mb: float = 10.0, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the soak and return its report (see the module docstring); ``report["ok"]`` is the verdict."""
    directory = short_tempdir()
    parent = FakeParent(os.path.join(directory, "parent.sock"))
    module = ModuleProcess(socket_dir=directory, log_level="info")
    try:
        image = jpeg(test_image())
        parent.cameras["cam"] = frame(test_image(), "image/jpeg")
        path, model_kind = model_file(models, Path(directory))
        module.wait_for_socket()
        module.ready(parent.address)
        module.add("det", MLMODEL, {"model_path": path, "num_threads": 1, "pool_size": 2})
        module.add("vis", VISION, {"mlmodel_name": "det", "camera_name": "cam"},
                   ("rdk:service:mlmodel/det", "rdk:component:camera/cam"))
        pid = module.proc.pid
        tensor = np.asarray(test_image((300, 300)), np.uint8)[None]
        infer_request = mlmodel_pb2.InferRequest(name="det", input_tensors=flat_tensors.encode_all({"image": tensor}))
        calls: list[tuple[str, Callable[[], Any]]] = [
            ("GetDetections", lambda: module.vision.GetDetections(vision_pb2.GetDetectionsRequest(
                name="vis", image=image, mime_type="image/jpeg"), timeout=CALL_TIMEOUT_S)),
            ("GetDetectionsFromCamera", lambda: module.vision.GetDetectionsFromCamera(
                vision_pb2.GetDetectionsFromCameraRequest(name="vis", camera_name="cam"), timeout=CALL_TIMEOUT_S)),
            ("Infer", lambda: module.mlmodel.Infer(infer_request, timeout=CALL_TIMEOUT_S)),
        ]
        mixed: list[tuple[str, Callable[[], Any]]] = [
            ("CaptureAllFromCamera", lambda: module.vision.CaptureAllFromCamera(vision_pb2.CaptureAllFromCameraRequest(
                name="vis", camera_name="cam", return_image=True, return_detections=True), timeout=CALL_TIMEOUT_S)),
            ("GetProperties", lambda: module.vision.GetProperties(vision_pb2.GetPropertiesRequest(name="vis"),
                                                                  timeout=CALL_TIMEOUT_S)),
            ("DoCommand", lambda: module.vision.DoCommand(common_pb2.DoCommandRequest(
                name="vis", command=dict_to_struct({"command": "stats"})), timeout=CALL_TIMEOUT_S)),
            ("Metadata", lambda: module.mlmodel.Metadata(mlmodel_pb2.MetadataRequest(name="det"), timeout=CALL_TIMEOUT_S)),
            ("GetStatus", lambda: module.mlmodel.GetStatus(common_pb2.GetStatusRequest(name="det"),
                                                           timeout=CALL_TIMEOUT_S)),
        ]
        tally = Tally()
        stop = threading.Event()

        def client(index: int) -> None:
            plan = [calls[index]] if index < len(calls) else mixed
            i = 0
            while not stop.is_set():
                name, call = plan[i % len(plan)]
                i += 1
                try:
                    call()
                    with tally.lock:
                        tally.calls[name] += 1
                except grpc.RpcError as exc:
                    with tally.lock:
                        tally.calls[name] += 1
                        tally.errors[f"{name} {exc.code().name}"] += 1
                        if len(tally.error_examples) < 10:
                            tally.error_examples.append(f"{name}: {exc.code().name}: {exc.details()}")

        rss0, fds0, threads0 = proc_status(pid)
        log(f"soak: {seconds:.0f} s, {threads} client threads, {model_kind} model, module pid {pid}; "
            f"before load: RSS {rss0:.1f} MB, {fds0} fds, {threads0} threads")
        workers = [threading.Thread(target=client, args=(i,), daemon=True, name=f"soak-{i}") for i in range(threads)]
        started = time.monotonic()
        for worker in workers:
            worker.start()
        samples: list[Sample] = []
        warmup_s = min(60.0, seconds / 3)
        log(f"{'t (s)':>7} {'RSS MB':>8} {'fds':>5} {'threads':>8} {'calls':>9} {'errors':>7}")
        next_sample = 0.0
        while True:
            now = time.monotonic() - started
            if now >= next_sample or now >= seconds:
                rss, fds, n_threads = proc_status(pid)
                n_calls, n_errors = tally.total()
                samples.append(Sample(round(now, 1), round(rss, 2), fds, n_threads, n_calls, n_errors))
                log(f"{now:7.1f} {rss:8.1f} {fds:5d} {n_threads:8d} {n_calls:9d} {n_errors:7d}")
                next_sample += sample_every
            if now >= seconds:
                break
            if module.proc.poll() is not None:
                raise RuntimeError(f"the module exited during the soak:\n{module.log()[-3000:]}")
            time.sleep(min(0.5, max(0.01, next_sample - now)))
        stop.set()
        for worker in workers:
            worker.join(CALL_TIMEOUT_S + 5)
        elapsed = time.monotonic() - started
        report = _verdict(samples, warmup_s, rss_limit_mb)
        calls_total, errors_total = tally.total()
        report.update({
            "seconds": round(elapsed, 1), "threads": threads, "model": model_kind, "model_path": path,
            "calls": dict(tally.calls), "calls_total": calls_total, "calls_per_s": round(calls_total / elapsed, 1),
            "errors": dict(tally.errors), "errors_total": errors_total, "error_examples": tally.error_examples,
            "parent_log_entries": len(parent.logs()), "parent_rejected_logs": len(parent.rejected_logs()),
            "camera_calls": len(parent.calls("GetImages")), "samples": [asdict(s) for s in samples],
            "before_load": {"rss_mb": round(rss0, 2), "fds": fds0, "threads": threads0},
        })
        report["ok"] = report["ok"] and errors_total == 0 and report["parent_rejected_logs"] == 0
        log(f"calls: {calls_total} ({report['calls_per_s']}/s) {dict(tally.calls)}; errors: {errors_total} "
            f"{dict(tally.errors)}")
        log(f"after warm-up ({warmup_s:.0f} s): RSS {report['rss_warm_mb']} MB -> last {report['rss_last_mb']} MB, "
            f"max {report['rss_max_after_warmup_mb']} MB (growth {report['rss_growth_mb']:+.2f} MB, max "
            f"{report['rss_max_growth_mb']:+.2f} MB, limit {rss_limit_mb} MB); fds {report['fds_warm']} -> max "
            f"{report['fds_max_after_warmup']}, last {report['fds_last']}; threads {report['threads_warm']} -> "
            f"{report['threads_last']}; parent log entries {report['parent_log_entries']} "
            f"(rejected {report['parent_rejected_logs']})")
        log("verdict: " + ("OK" if report["ok"] else "FAILED: " + "; ".join(report["problems"] or ["call errors"])))
        return report
    finally:
        module.close()
        parent.close()
        shutil.rmtree(directory, ignore_errors=True)


def _verdict(samples: list[Sample], warmup_s: float, rss_limit_mb: float) -> dict[str, Any]:
    warm_index = next((i for i, s in enumerate(samples) if s.t >= warmup_s), len(samples) - 1)
    warm, after = samples[warm_index], samples[warm_index:]
    rss_max = max(s.rss_mb for s in after)
    fds_max = max(s.fds for s in after)
    problems = []
    if rss_max - warm.rss_mb > rss_limit_mb:
        problems.append(f"RSS grew {rss_max - warm.rss_mb:.1f} MB after the warm-up (limit {rss_limit_mb} MB)")
    if fds_max > warm.fds:
        problems.append(f"open fds grew from {warm.fds} to {fds_max} after the warm-up")
    return {
        "warmup_s": round(warmup_s, 1), "rss_warm_mb": warm.rss_mb, "rss_last_mb": samples[-1].rss_mb,
        "rss_max_after_warmup_mb": rss_max, "rss_growth_mb": round(samples[-1].rss_mb - warm.rss_mb, 2),
        "rss_max_growth_mb": round(rss_max - warm.rss_mb, 2), "rss_first_mb": samples[0].rss_mb,
        "fds_warm": warm.fds, "fds_max_after_warmup": fds_max, "fds_last": samples[-1].fds,
        "threads_warm": warm.threads, "threads_last": samples[-1].threads, "problems": problems, "ok": not problems,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="duration (default 10)")
    parser.add_argument("--seconds", type=float, default=None, help="duration in seconds (overrides --minutes)")
    parser.add_argument("--threads", type=int, default=4, help="client threads (default 4)")
    parser.add_argument("--models", choices=("auto", "real", "synthetic"), default="auto")
    parser.add_argument("--sample-every", type=float, default=None, help="seconds between samples (default: 5, "
                        "or 1/20 of a run shorter than 100 s)")
    parser.add_argument("--rss-limit-mb", type=float, default=10.0, help="allowed RSS growth after warm-up (10)")
    parser.add_argument("--json", type=Path, default=None, help="also write the report here")
    args = parser.parse_args(argv)
    seconds = args.seconds if args.seconds is not None else args.minutes * 60
    every = args.sample_every if args.sample_every is not None else min(5.0, max(0.5, seconds / 20))
    report = run(seconds, threads=args.threads, models=args.models, sample_every=every,
                 rss_limit_mb=args.rss_limit_mb)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
