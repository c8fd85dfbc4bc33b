"""The registry of what this module serves: the APIs and the (API, model) pairs with their parsers and factories.

The code implements one model per API; the model triplets come from meta.json (module/manifest.py), so a fork
publishes under its own namespace by editing meta.json alone.
"""

from __future__ import annotations

from typing import Final

from module.gen.service.mlmodel.v1 import mlmodel_pb2
from module.gen.service.vision.v1 import vision_pb2
from module.manifest import Manifest, load_manifest
from module.mlmodel.config import TFLiteConfig
from module.mlmodel.model import TFLiteModel
from module.resource.names import MLMODEL_API, VISION_API, Model
from module.resource.registry import APISpec, ModelSpec, Registry, ResourceContext
from module.vision.config import VisionConfig
from module.vision.service import VisionService

MANIFEST: Final = load_manifest()


def _create_tflite(context: ResourceContext, config: TFLiteConfig) -> TFLiteModel:
    return TFLiteModel(config, name=context.name)


def _create_vision(context: ResourceContext, config: VisionConfig) -> VisionService:
    return VisionService.create(context, config)


def build_registry(manifest: Manifest) -> Registry:
    """The registry with the model triplets ``manifest`` names for each implemented API."""
    manifest.require_apis([str(MLMODEL_API), str(VISION_API)])
    return Registry(
        apis=[
            APISpec(MLMODEL_API, mlmodel_pb2.DESCRIPTOR.services_by_name["MLModelService"].full_name),
            APISpec(VISION_API, vision_pb2.DESCRIPTOR.services_by_name["VisionService"].full_name),
        ],
        models=[
            ModelSpec(MLMODEL_API, Model.parse(manifest.model_for(str(MLMODEL_API))), TFLiteConfig.parse,
                      TFLiteConfig.dependencies, _create_tflite, "Runs a TFLite model on the CPU with a pool of interpreters."),
            ModelSpec(VISION_API, Model.parse(manifest.model_for(str(VISION_API))), VisionConfig.parse,
                      VisionConfig.dependencies, _create_vision,
                      "Detections and classifications from images or cameras through an mlmodel."),
        ],
    )


REGISTRY: Final = build_registry(MANIFEST)
TFLITE_CPU: Final = Model.parse(MANIFEST.model_for(str(MLMODEL_API)))
MLMODEL_VISION: Final = Model.parse(MANIFEST.model_for(str(VISION_API)))
