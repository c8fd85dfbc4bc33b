"""Runs inside the official Viam Python SDK's virtual environment (.venv-sdk, made by tests/e2e/test_sdk_compat.py).

Connects to a running module's socket the way the SDK dials a local socket (``viam.rpc.dial.dial`` with WebRTC
disabled, which is a grpclib ``Channel(path=...)``), makes the calls listed in the JSON plan given as argv[1], and
prints one JSON object with the results. Protobuf results are returned serialized (base64) so the test can parse
them with the module's own wire-compatible messages; arrays as dtype, shape and base64 of their bytes.

This file must not import the module package: the SDK pins protobuf 6, the module uses protobuf 7.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from typing import Any

from grpclib.exceptions import GRPCError
from json_arrays import array_from_json, array_to_json, b64  # this folder: the script's sys.path[0]
from viam.media.video import CameraMimeType, ViamImage
from viam.rpc.dial import DialOptions, dial
from viam.services.mlmodel.client import MLModelClient
from viam.services.vision.client import VisionClient


def image_in(spec: dict[str, Any]) -> ViamImage:
    return ViamImage(base64.b64decode(spec["data"]), CameraMimeType.from_string(spec["mime_type"]))


async def run_call(channel: Any, call: dict[str, Any]) -> Any:
    kind, method, name, args = call["kind"], call["method"], call["name"], call.get("args", {})
    if kind == "mlmodel":
        ml = MLModelClient(name, channel)
        if method == "metadata":
            return {"proto": b64((await ml.metadata(timeout=30)).SerializeToString())}
        if method == "infer":
            outputs = await ml.infer({k: array_from_json(v) for k, v in args["inputs"].items()}, timeout=60)
            return {"outputs": {k: array_to_json(v) for k, v in outputs.items()}}
    if kind == "vision":
        vision = VisionClient(name, channel)
        if method == "get_detections":
            found = await vision.get_detections(image_in(args["image"]), timeout=60)
            return {"protos": [b64(d.SerializeToString()) for d in found]}
        if method == "get_detections_from_camera":
            found = await vision.get_detections_from_camera(args["camera"], timeout=60)
            return {"protos": [b64(d.SerializeToString()) for d in found]}
        if method == "get_classifications":
            found = await vision.get_classifications(image_in(args["image"]), args["count"], timeout=60)
            return {"protos": [b64(c.SerializeToString()) for c in found]}
        if method == "get_classifications_from_camera":
            found = await vision.get_classifications_from_camera(args["camera"], args["count"], timeout=60)
            return {"protos": [b64(c.SerializeToString()) for c in found]}
        if method == "get_object_point_clouds":
            found = await vision.get_object_point_clouds(args["camera"], timeout=60)
            return {"protos": [b64(o.SerializeToString()) for o in found]}
        if method == "get_properties":
            return {"proto": b64((await vision.get_properties(timeout=30)).SerializeToString())}
        if method == "capture_all_from_camera":
            result = await vision.capture_all_from_camera(
                args["camera"], return_image=True, return_classifications=True, return_detections=True,
                return_object_point_clouds=False, timeout=60)
            image = result.image
            return {
                "image": None if image is None else {"data": b64(image.data), "mime_type": str(image.mime_type),
                                                     "width": image.width, "height": image.height},
                "detections": None if result.detections is None else [b64(d.SerializeToString()) for d in result.detections],
                "classifications": None if result.classifications is None else
                [b64(c.SerializeToString()) for c in result.classifications],
            }
        if method == "do_command":
            return {"result": await vision.do_command(args["command"], timeout=30)}
    raise ValueError(f"unknown call {call}")


async def main(plan: dict[str, Any]) -> dict[str, Any]:
    viam_channel = await dial(plan["socket"], DialOptions(disable_webrtc=True, insecure=True))
    results: dict[str, Any] = {}
    try:
        for call in plan["calls"]:
            try:
                results[call["id"]] = {"ok": await run_call(viam_channel.channel, call)}
            except GRPCError as exc:
                results[call["id"]] = {"error": {"status": exc.status.name, "message": exc.message}}
    finally:
        viam_channel.close()
    return results


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        plan_in = json.load(f)
    print(json.dumps(asyncio.run(main(plan_in))))
