"""Runs inside the official Viam Python SDK's virtual environment (.venv-sdk): a client of ``./run.sh local --serve``
written exactly as for a real machine, ``RobotClient.at_address`` + ``VisionClient.from_robot`` /
``MLModelClient.from_robot`` / ``Camera.from_robot``, and prints one JSON object with what came back.

argv: the robot socket, the vision service, the mlmodel service, the camera. This file must not import the module
package (the SDK pins protobuf 6, the module uses protobuf 7).
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from viam.components.camera import Camera
from viam.errors import ResourceNotFoundError
from viam.robot.client import RobotClient
from viam.rpc.dial import DialOptions
from viam.services.mlmodel import MLModelClient
from viam.services.vision import VisionClient


async def main(socket: str, vision_name: str, mlmodel_name: str, camera_name: str) -> dict[str, Any]:
    options = RobotClient.Options(dial_options=DialOptions(disable_webrtc=True, insecure=True),
                                  check_connection_interval=0, attempt_reconnect_interval=0)
    robot = await RobotClient.at_address(socket, options)
    try:
        out: dict[str, Any] = {"resource_names": sorted(f"{r.namespace}:{r.type}:{r.subtype}/{r.name}"
                                                        for r in robot.resource_names)}
        vision = VisionClient.from_robot(robot, vision_name)
        out["properties"] = str(await vision.get_properties(timeout=30)).split()
        out["detections"] = [[d.class_name, round(d.confidence, 4), d.x_min, d.y_min, d.x_max, d.y_max]
                             for d in await vision.get_detections_from_camera(camera_name, timeout=60)]
        out["do_command"] = await vision.do_command({"command": "get_config"}, timeout=30)
        model = MLModelClient.from_robot(robot, mlmodel_name)
        metadata = await model.metadata(timeout=30)
        out["metadata"] = {"inputs": [[t.name, t.data_type, list(t.shape)] for t in metadata.input_info],
                           "outputs": [t.name for t in metadata.output_info]}
        camera = Camera.from_robot(robot, camera_name)
        images, _ = await camera.get_images(timeout=30)
        out["camera"] = [[str(i.mime_type), len(i.data)] for i in images]
        try:
            VisionClient.from_robot(robot, "no-such-detector")
            out["missing"] = "found"
        except ResourceNotFoundError as exc:
            out["missing"] = type(exc).__name__
        return out
    finally:
        await robot.close()


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(*sys.argv[1:5])), default=str))
