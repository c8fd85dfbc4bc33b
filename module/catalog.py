"""The registry of what this module serves: the APIs and the (API, model) pairs with their parsers and factories."""

from __future__ import annotations

from typing import Final

from module.gen.service.mlmodel.v1 import mlmodel_pb2
from module.gen.service.vision.v1 import vision_pb2
from module.mlmodel.config import TFLiteConfig
from module.mlmodel.model import TFLiteModel
from module.resource.names import MLMODEL_API, VISION_API, Model
from module.resource.registry import APISpec, ModelSpec, Registry, ResourceContext
from module.vision.config import VisionConfig
from module.vision.service import VisionService

NAMESPACE: Final = "tflite-py"
TFLITE_CPU: Final = Model(NAMESPACE, "mlmodel", "tflite_cpu")
MLMODEL_VISION: Final = Model(NAMESPACE, "vision", "mlmodel")


def _create_tflite(context: ResourceContext, config: TFLiteConfig) -> TFLiteModel:
    return TFLiteModel(config, name=context.name)


def _create_vision(context: ResourceContext, config: VisionConfig) -> VisionService:
    return VisionService.create(context, config)


REGISTRY: Final = Registry(
    apis=[
        APISpec(MLMODEL_API, mlmodel_pb2.DESCRIPTOR.services_by_name["MLModelService"].full_name),
        APISpec(VISION_API, vision_pb2.DESCRIPTOR.services_by_name["VisionService"].full_name),
    ],
    models=[
        ModelSpec(MLMODEL_API, TFLITE_CPU, TFLiteConfig.parse, TFLiteConfig.dependencies, _create_tflite,
                  "Runs a TFLite model on the CPU with a pool of interpreters."),
        ModelSpec(VISION_API, MLMODEL_VISION, VisionConfig.parse, VisionConfig.dependencies, _create_vision,
                  "Detections and classifications from images or cameras through an mlmodel."),
    ],
)
