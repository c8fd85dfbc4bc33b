"""The transport floor for the Infer target: grpcio and a bare interpreter in their own process, no module code.

``python bench/floor_server.py <socket> <model.tflite>`` serves ``/bench.Floor/Invoke`` on a Unix socket with the
same options as the module: the request is the raw input tensor bytes (no protobuf), the handler copies them into
a one-thread interpreter, invokes it and returns the first output's raw bytes. Prints ``ready`` once serving.

What a call costs above a bare ``invoke()`` is what grpcio itself costs to carry the tensor to another process and
wake a waiting client on this machine: the least any gRPC module written in Python can add.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from concurrent import futures

import grpc
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bare import interpreter_class  # noqa: E402  (run as a script)

SERVICE = "bench.Floor"
METHOD = f"/{SERVICE}/Invoke"
OPTIONS = [("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)]


def main(socket: str, model_path: str) -> None:
    interp = interpreter_class("ai-edge-litert")(model_path=model_path, num_threads=1)
    interp.allocate_tensors()
    (given,) = interp.get_input_details()
    output = interp.get_output_details()[0]["index"]

    def invoke(request: bytes, context: grpc.ServicerContext) -> bytes:
        interp.set_tensor(given["index"], np.frombuffer(request, dtype=given["dtype"]).reshape(given["shape"]))
        interp.invoke()
        return interp.get_tensor(output).tobytes()

    # One worker: the client calls one at a time, and the interpreter must never be shared between threads.
    serve_raw(socket, SERVICE, {"Invoke": invoke}, workers=1)


def serve_raw(socket: str, service: str, methods: dict[str, Callable[[bytes, grpc.ServicerContext], bytes]],
              workers: int) -> None:
    """Serve ``methods`` (raw bytes in and out) as ``/<service>/<name>`` on a Unix socket with grpcio's own
    ThreadPoolExecutor, print ``ready``, and block until SIGTERM."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers), options=OPTIONS)
    handlers = {name: grpc.unary_unary_rpc_method_handler(method) for name, method in methods.items()}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, handlers),))
    server.add_insecure_port(f"unix:{socket}")
    server.start()
    signal.signal(signal.SIGTERM, lambda *_: server.stop(0))
    print("ready", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
