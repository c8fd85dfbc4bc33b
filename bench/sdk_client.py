"""The official Python SDK client (VisionClient / MLModelClient on a grpclib channel) against a module socket.

Runs inside the SDK venv (viam-sdk pins protobuf 6, so it cannot share the module's venv):
``python bench/sdk_client.py <socket> <vision name> <mlmodel name> <jpeg> <n>``; prints JSON. Also times the SDK's
own FlatTensor helpers on 1M float32 so they can be put beside module/tensors.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

import numpy as np
from grpclib.client import Channel
from viam.media.video import CameraMimeType, ViamImage
from viam.services.mlmodel.client import MLModelClient
from viam.services.mlmodel.utils import flat_tensors_to_ndarrays, ndarrays_to_flat_tensors
from viam.services.vision.client import VisionClient

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stats import summary  # noqa: E402


async def timed(call, n: int, warmup: int = 5) -> list[float]:
    for _ in range(warmup):
        await call()
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


async def run(socket: str, vision_name: str, mlmodel_name: str, jpeg_path: str, n: int) -> dict:
    with open(jpeg_path, "rb") as handle:
        image = ViamImage(handle.read(), CameraMimeType.JPEG)
    channel = Channel(path=socket)
    try:
        vision = VisionClient(vision_name, channel)
        mlmodel = MLModelClient(mlmodel_name, channel)
        found = await vision.get_detections(image)
        meta = await mlmodel.metadata()
        name = meta.input_info[0].name
        tensor = np.random.default_rng(0).integers(0, 255, size=(1, 300, 300, 3), dtype=np.uint8)
        out = {"detections_per_call": len(found)}
        out["get_detections_ms"] = summary(await timed(lambda: vision.get_detections(image), n))
        out["infer_ms"] = summary(await timed(lambda: mlmodel.infer({name: tensor}), n))
        return out
    finally:
        channel.close()


def sdk_tensor_helpers(repeats: int = 5) -> dict:
    array = np.random.default_rng(0).standard_normal(1_000_000).astype(np.float32)
    enc, dec = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        tensors = ndarrays_to_flat_tensors({"x": array})
        enc.append((time.perf_counter() - started) * 1000)
        wire = tensors.SerializeToString()
        parsed = type(tensors).FromString(wire)
        started = time.perf_counter()
        back = flat_tensors_to_ndarrays(parsed)
        dec.append((time.perf_counter() - started) * 1000)
    assert np.array_equal(back["x"], array)
    return {"encode_ms": summary(enc), "decode_ms": summary(dec)}


def main(argv: list[str]) -> None:
    socket, vision_name, mlmodel_name, jpeg_path, n = argv[0], argv[1], argv[2], argv[3], int(argv[4])
    result = asyncio.run(run(socket, vision_name, mlmodel_name, jpeg_path, n))
    if "--tensor-helpers" in argv:
        result["sdk_flat_tensor_1m_float32"] = sdk_tensor_helpers()
    import google.protobuf
    import viam
    result["versions"] = {"viam-sdk": viam.__version__, "protobuf": google.protobuf.__version__,
                          "numpy": np.__version__}
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
