"""Security properties of the running module: a private socket and nothing else listening, no shell ever run with
configured or request values, DoCommand that touches no file, and logs that never carry image bytes or tensor
contents."""

from __future__ import annotations

import io
import ipaddress
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import PIL.Image
import PIL.PngImagePlugin
import pytest

from devkit.models import detector_model, passthrough_model
from devkit.standin.launcher import MLMODEL, REPO, VISION, ModuleProcess, short_tempdir
from devkit.standin.parent import CameraFrame, FakeParent
from module.gen.common.v1 import common_pb2
from module.gen.service.mlmodel.v1 import mlmodel_pb2
from module.gen.service.vision.v1 import vision_pb2
from module.mlmodel import flat_tensors
from module.resource.structs import dict_to_struct

pytestmark = pytest.mark.timeout(120)

MODULE_DIR = REPO / "module"


# --- /proc helpers ---------------------------------------------------------------------------------------------------

def socket_inodes(pid: int) -> set[int]:
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        match = re.fullmatch(r"socket:\[(\d+)\]", target)
        if match:
            inodes.add(int(match.group(1)))
    return inodes


def listening_unix_paths(inodes: set[int]) -> list[str]:
    """Paths (or "@abstract" names, or "" when unnamed) of the listening Unix sockets among ``inodes``."""
    found = []
    with open("/proc/net/unix") as table:
        next(table)
        for line in table:
            parts = line.split()
            flags, inode = int(parts[3], 16), int(parts[6])
            if inode in inodes and flags & 0x10000:  # __SO_ACCEPTCON: listen() was called
                found.append(parts[7] if len(parts) > 7 else "")
    return found


def _address(hex_address: str) -> str:
    host, port = hex_address.split(":")
    raw = bytes.fromhex(host)
    if len(raw) == 4:
        return f"{socket.inet_ntop(socket.AF_INET, raw[::-1])}:{int(port, 16)}"
    # IPv6 in /proc is four little-endian 32-bit words.
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
    return f"[{socket.inet_ntop(socket.AF_INET6, words)}]:{int(port, 16)}"


def inet_sockets(inodes: set[int]) -> list[tuple[str, str, str]]:
    """(table, local address, state) of every TCP/UDP socket among ``inodes``; state 0A is LISTEN."""
    found = []
    for table_name in ("tcp", "tcp6", "udp", "udp6"):
        path = f"/proc/net/{table_name}"
        if not os.path.exists(path):
            continue
        with open(path) as table:
            next(table)
            for line in table:
                parts = line.split()
                if int(parts[9]) in inodes:
                    found.append((table_name, _address(parts[1]), parts[3]))
    return found


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the module exited"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- socket permissions and listeners --------------------------------------------------------------------------------

def test_socket_is_owner_only_from_the_moment_it_exists() -> None:
    """Under a permissive umask (0000, as some service managers set) the socket must still never be connectable
    by another user, not even for the moment between bind and a later chmod."""
    directory = short_tempdir()
    old = os.umask(0)
    try:
        proc = subprocess.Popen([sys.executable, "-m", "module", f"{directory}/m.sock"], cwd=REPO,
                                env={**os.environ, "VIAM_NO_MODULE_PARENT": "true"},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    finally:
        os.umask(old)
    modes: set[int] = set()
    try:
        deadline = time.monotonic() + 60
        samples = 0
        while samples < 3000 and time.monotonic() < deadline:
            try:
                modes.add(stat.S_IMODE(os.stat(f"{directory}/m.sock").st_mode))
                samples += 1
            except FileNotFoundError:
                assert proc.poll() is None, "the module exited"
        assert samples, "the socket never appeared"
        assert modes == {0o600}, f"socket modes seen: {sorted(oct(m) for m in modes)}"
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(directory, ignore_errors=True)


def test_only_the_given_socket_listens(tmp_path: Path) -> None:
    directory = short_tempdir()
    parent = FakeParent(os.path.join(directory, "parent.sock"))
    module = ModuleProcess(socket_dir=directory, log_level="info")
    try:
        module.wait_for_socket()
        module.ready(parent.address)
        (tmp_path / "det.tflite").write_bytes(detector_model([(0.1, 0.1, 0.5, 0.5)], [0], [0.9]))
        module.add("det", MLMODEL, {"model_path": str(tmp_path / "det.tflite")})
        module.add("vis", VISION, {"mlmodel_name": "det"}, ("rdk:service:mlmodel/det",))
        parent.cameras["cam"] = CameraFrame(_png(b"x"), "image/png")
        module.vision.GetDetectionsFromCamera(vision_pb2.GetDetectionsFromCameraRequest(name="vis", camera_name="cam"),
                                              timeout=10)  # the parent connection is in use too
        inodes = socket_inodes(module.proc.pid)
        assert listening_unix_paths(inodes) == [module.socket]
        assert inet_sockets(inodes) == []
    finally:
        module.close()
        parent.close()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.parametrize("given", ["127.0.0.1:{port}", "localhost:{port}", ":{port}", "{port}"])
def test_tcp_mode_listens_only_on_the_given_loopback_address(given: str) -> None:
    """viam-server passes 127.0.0.1:<port>; an address without a host means loopback too, not every interface."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "module", given.format(port=port), "--tcp-mode"], cwd=REPO,
                            env={**os.environ, "VIAM_NO_MODULE_PARENT": "true"}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for_port(port, proc)
        inodes = socket_inodes(proc.pid)
        listening = {address for table, address, state in inet_sockets(inodes) if state == "0A"}
        assert listening, "the module does not listen on TCP"
        for address in listening:
            host, _, bound_port = address.rpartition(":")
            ip = ipaddress.ip_address(host.strip("[]"))
            loopback = ip.is_loopback or bool(getattr(ip, "ipv4_mapped", None) and ip.ipv4_mapped.is_loopback)
            assert loopback and int(bound_port) == port, listening
        assert not [s for s in inet_sockets(inodes) if s[0].startswith("udp")]
        assert listening_unix_paths(inodes) == []
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


# --- no shell, no code from data -------------------------------------------------------------------------------------

FORBIDDEN = [
    (r"\bimport\s+subprocess\b|\bfrom\s+subprocess\b|\bsubprocess\.", "subprocess"),
    (r"\bos\.(system|popen|exec\w*|spawn\w*|posix_spawn\w*|fork\w*)\s*\(", "os process functions"),
    (r"shell\s*=\s*True", "shell=True"),
    (r"\bimport\s+(pty|pickle|marshal|shelve)\b|\bfrom\s+(pty|pickle|marshal|shelve)\b", "pty/pickle/marshal"),
    (r"(?<![\w.])(eval|exec)\s*\(", "eval/exec"),
    (r"\byaml\.load\s*\(", "yaml.load"),
]


def _hits(paths: list[Path], patterns: list[tuple[str, str]]) -> list[str]:
    hits = []
    for path in paths:
        text = path.read_text()
        for pattern, what in patterns:
            for match in re.finditer(pattern, text):
                line = text.count("\n", 0, match.start()) + 1
                hits.append(f"{path.relative_to(REPO)}:{line}: {what}")
    return hits


def test_module_code_never_runs_a_shell_or_code_from_data() -> None:
    """The served process: every module/ file except the generated protos and module/local (a developer tool that
    launches the module the way viam-server does, in a process of its own)."""
    served = [p for p in MODULE_DIR.rglob("*.py") if not {"gen", "local"} & set(p.relative_to(MODULE_DIR).parts)]
    assert len(served) > 20
    assert _hits(served, FORBIDDEN) == []
    # module/local starts processes from argv lists only: never through a shell, never with code from data.
    local = sorted((MODULE_DIR / "local").rglob("*.py"))
    assert _hits(local, FORBIDDEN[1:]) == []


def test_the_served_process_does_not_import_the_developer_tools() -> None:
    code = ("import sys, module.main, module.catalog; "
            "print(sorted(m for m in sys.modules if m.startswith('devkit.local')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_the_grep_catches_what_it_looks_for() -> None:
    """The patterns above are not vacuous."""
    samples = ["import subprocess", "os.system('ls')", "x = subprocess.run(a, shell=True)", "os.popen(c)",
               "import pickle", "eval(text)", "os.execvp(a, b)"]
    for sample in samples:
        assert any(re.search(p, sample) for p, _ in FORBIDDEN), sample


SHELL_PATHS = ["$(touch {canary}).tflite", "`touch {canary}`.tflite", "x; touch {canary}; #.tflite",
               "x | touch {canary} | y.tflite", "x && touch {canary} && y.tflite", "'; touch {canary}; '.tflite",
               "x\ntouch {canary}\n.tflite"]


@pytest.fixture(scope="module")
def plain_module() -> Iterator[ModuleProcess]:
    module = ModuleProcess(env={"VIAM_NO_MODULE_PARENT": "true"}, log_level="debug")
    try:
        module.wait_for_socket()
        module.ready("")
        yield module
    finally:
        module.close()


@pytest.mark.parametrize("template", SHELL_PATHS)
def test_shell_metacharacters_in_paths_are_just_missing_files(plain_module: ModuleProcess, template: str,
                                                              tmp_path: Path) -> None:
    canary = tmp_path / "pwned"
    path = template.format(canary=canary)
    error = _error(plain_module.add, "shell", MLMODEL, {"model_path": path})
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "does not exist" in error.details()
    (tmp_path / "m.tflite").write_bytes(passthrough_model("float32", (1, 2)))
    error = _error(plain_module.add, "shell", MLMODEL, {"model_path": str(tmp_path / "m.tflite"),
                                                         "label_path": path.removesuffix(".tflite") + ".txt"})
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "does not exist" in error.details()
    error = _error(plain_module.validate, "shell-vis", VISION, {"mlmodel_name": "m", "label_path": path})
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "does not exist" in error.details()
    time.sleep(0.05)
    assert not canary.exists()


# --- DoCommand touches no file ---------------------------------------------------------------------------------------

def _error(call: Any, *args: Any, **kwargs: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call(*args, **kwargs)
    return info.value


def fifo_was_opened(fifo: Path) -> bool:
    """True if some process has ``fifo`` open for reading (opening the write end without blocking then works)."""
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return False
    os.close(fd)
    return True


def test_do_command_with_paths_reads_and_writes_nothing(plain_module: ModuleProcess, tmp_path: Path) -> None:
    (tmp_path / "det.tflite").write_bytes(detector_model([(0.1, 0.1, 0.5, 0.5)], [0], [0.9]))
    plain_module.add("det", MLMODEL, {"model_path": str(tmp_path / "det.tflite")})
    plain_module.add("vis", VISION, {"mlmodel_name": "det"}, ("rdk:service:mlmodel/det",))
    fifo = tmp_path / "canary.fifo"  # any open() of it for reading would block there, and show up here
    os.mkfifo(fifo)
    target = tmp_path / "written"
    commands = [
        {"command": "get_config", "path": str(fifo)},
        {"command": "get_config", "label_path": str(fifo), "output": str(target)},
        {"command": "stats", "file": str(fifo)},
        {"command": "stats", "save_to": str(target)},
        {"command": "set_thresholds", "label_path": str(fifo)},
        {"command": "set_thresholds", "model_path": str(fifo)},
        {"command": "load_model", "model_path": str(fifo)},
        {"command": "read", "path": str(fifo)},
        {"command": "write", "path": str(target), "data": "x"},
        {"command": str(fifo)},
        {"model_path": str(fifo)},
        {"path": str(target)},
    ]
    for command in commands:
        error = _error(plain_module.vision.DoCommand, common_pb2.DoCommandRequest(
            name="vis", command=dict_to_struct(command)), timeout=5)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (command, error.details())
        assert not fifo_was_opened(fifo), command
        assert not target.exists(), command
    # The legitimate commands still work.
    reply = plain_module.vision.DoCommand(common_pb2.DoCommandRequest(
        name="vis", command=dict_to_struct({"command": "get_config"})), timeout=5)
    assert reply.result["mlmodel_name"] == "det"


# --- logs never carry image bytes or tensor contents -----------------------------------------------------------------

CANARY = b"QZX7-CANARY-9FJ2"
CANARY_FLOAT = 31337.4375  # exact in float32; its text and its bytes must appear nowhere in the logs


def _png(text: bytes) -> bytes:
    info = PIL.PngImagePlugin.PngInfo()
    info.add_text("comment", text.decode())
    out = io.BytesIO()
    PIL.Image.new("RGB", (40, 30), (200, 10, 10)).save(out, "PNG", pnginfo=info)
    return out.getvalue()


@dataclass
class Traffic:
    module: ModuleProcess
    parent: FakeParent


def _send_everything(t: Traffic, tmp_path: Path) -> None:
    module = t.module
    png = _png(CANARY * 4)
    corrupt = b"\xff\xd8\xff" + CANARY * 8
    rgba_bad = b"RGBA" + (40).to_bytes(4, "big") + (30).to_bytes(4, "big") + CANARY * 10
    for data, mime in [(png, "image/png"), (corrupt, "image/jpeg"), (corrupt, ""), (rgba_bad, "image/vnd.viam.rgba"),
                       (CANARY * 3, "image/canary"), (png, "image/jpeg")]:
        try:
            module.vision.GetDetections(vision_pb2.GetDetectionsRequest(name="vis", image=data, mime_type=mime),
                                        timeout=10)
        except grpc.RpcError:
            pass
    t.parent.cameras["canary-cam"] = CameraFrame(corrupt, "image/jpeg")
    t.parent.cameras["canary-png"] = CameraFrame(png, "image/png")
    for cam in ("canary-cam", "canary-png"):
        for call in (module.vision.GetDetectionsFromCamera, module.vision.GetClassificationsFromCamera):
            request_type = (vision_pb2.GetDetectionsFromCameraRequest if call == module.vision.GetDetectionsFromCamera
                            else vision_pb2.GetClassificationsFromCameraRequest)
            try:
                call(request_type(name="vis", camera_name=cam), timeout=10)
            except grpc.RpcError:
                pass
    floats = np.full((1, 4), CANARY_FLOAT, np.float32)
    byte_tensor = np.frombuffer(CANARY * 6, np.uint8)[: 32 * 3].reshape(1, 4, 8, 3)
    requests = [
        {"input": floats},  # a good call
        {"input": np.full((1, 5), CANARY_FLOAT, np.float32)},  # wrong shape
        {"input": floats.astype(np.float64)},  # wrong dtype
        {"input": byte_tensor},  # wrong dtype, canary bytes
        {"input": floats, "other": floats},  # unknown name
    ]
    for inputs in requests:
        try:
            module.mlmodel.Infer(mlmodel_pb2.InferRequest(name="pass", input_tensors=flat_tensors.encode_all(inputs)),
                                 timeout=10)
        except grpc.RpcError:
            pass
    mismatched = mlmodel_pb2.InferRequest(name="pass")
    mismatched.input_tensors.tensors["input"].CopyFrom(mlmodel_pb2.FlatTensor(
        shape=[1, 4], uint8_tensor=mlmodel_pb2.FlatTensorDataUInt8(data=CANARY)))
    try:
        module.mlmodel.Infer(mismatched, timeout=10)
    except grpc.RpcError:
        pass


def test_logs_never_contain_image_bytes_or_tensor_contents(tmp_path: Path) -> None:
    directory = short_tempdir()
    parent = FakeParent(os.path.join(directory, "parent.sock"))
    module = ModuleProcess(socket_dir=directory, log_level="debug")
    try:
        module.wait_for_socket()
        module.ready(parent.address)
        (tmp_path / "det.tflite").write_bytes(detector_model([(0.1, 0.1, 0.5, 0.5)], [0], [0.9]))
        (tmp_path / "pass.tflite").write_bytes(passthrough_model("float32", (1, 4)))
        module.add("det", MLMODEL, {"model_path": str(tmp_path / "det.tflite")})
        module.add("pass", MLMODEL, {"model_path": str(tmp_path / "pass.tflite")})
        module.add("vis", VISION, {"mlmodel_name": "det"}, ("rdk:service:mlmodel/det",))
        _send_everything(Traffic(module, parent), tmp_path)
        module.stop(signal.SIGTERM)  # flush everything
        entries = parent.logs()
        rejected = parent.rejected_logs()
        texts = [module.log()] + [f"{e.logger_name} {e.message} {e.caller} {list(e.fields)}" for e in entries]
        texts += [str(request) for _, request in rejected]
        everything = "\n".join(texts)
        # The logs are really there (the test would see a leak): debug lines from Ready, the adds and the calls.
        assert len(entries) >= 5 and "det" in everything
        forbidden = {
            "canary text": CANARY.decode(),
            "canary bytes as hex": CANARY.hex(),
            "canary as a bytes repr": repr(CANARY)[2:-1][:12],
            "float value": "31337.4",
            "float bytes": repr(np.float32(CANARY_FLOAT).tobytes())[2:-1],
            "float bytes as hex": np.float32(CANARY_FLOAT).tobytes().hex(),
        }
        leaks = {what: needle for what, needle in forbidden.items() if needle in everything}
        assert not leaks, leaks
    finally:
        module.close()
        parent.close()
        shutil.rmtree(directory, ignore_errors=True)
