"""The transport floor for issue 13's targets: the reference pipeline (bench/reference.py) behind a plain grpcio
server in its own process, no module code.

``python bench/pipeline_floor_server.py <socket> <model.tflite> <cores>`` serves on a Unix socket, with the module's
message limits, requests whose body is the raw JPEG and whose reply is the first output's bytes:

* ``/bench.PipelineFloor/Alone``: one interpreter with ``cores`` threads (the one-client reference), behind a lock;
* ``/bench.PipelineFloor/Shared``: one single-thread interpreter per server thread (the many-client ceiling).

grpcio's own ThreadPoolExecutor with ``cores`` workers. Prints ``ready`` once serving. What a call costs above
the same pipeline in-process is what grpcio costs on this machine before any module code runs.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import grpc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from floor_server import serve_raw  # noqa: E402  (run as a script)
from reference import Reference  # noqa: E402

SERVICE = "bench.PipelineFloor"


def main(socket: str, model_path: str, cores: int) -> None:
    model = Path(model_path)
    alone, alone_lock = Reference(model, cores), threading.Lock()
    per_thread = threading.local()

    def run_alone(request: bytes, context: grpc.ServicerContext) -> bytes:
        with alone_lock:
            return alone(request)[0].tobytes()

    def run_shared(request: bytes, context: grpc.ServicerContext) -> bytes:
        reference = getattr(per_thread, "reference", None)
        if reference is None:
            reference = per_thread.reference = Reference(model, 1)
        return reference(request)[0].tobytes()

    serve_raw(socket, SERVICE, {"Alone": run_alone, "Shared": run_shared}, workers=cores)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
