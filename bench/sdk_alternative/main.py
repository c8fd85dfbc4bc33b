"""The alternative a user would otherwise write: a viam-sdk module with an MLModel (TFLite) and a Vision service,
written the way Viam's Python SDK documentation and module templates show (EasyResource classes, async methods,
Pillow decode + resize, the vision service calling its mlmodel dependency).

Benchmark-only (bench/ runs it in its own venv: viam-sdk pins protobuf 6). Run: ``python main.py <socket path>``.

Deliberately *favourable* to the SDK in one respect: with no viam-server (VIAM_NO_MODULE_PARENT=true) the SDK
cannot resolve dependencies (it asks the parent), so the vision service finds the mlmodel in this module's own
resource manager and calls it in-process. Under viam-server the dependency would be an MLModelClient whose Infer
goes module -> viam-server -> module.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Dict, List, Optional, Tuple

import numpy as np
from ai_edge_litert.interpreter import Interpreter
from numpy.typing import NDArray
from PIL import Image
from typing_extensions import Self
from viam.media.utils.pil import viam_to_pil_image
from viam.media.video import ViamImage
from viam.module.module import Module
from viam.proto.app.robot import ComponentConfig
from viam.proto.common import PointCloudObject, ResourceName
from viam.proto.service.mlmodel import Metadata, TensorInfo
from viam.proto.service.vision import Classification, Detection
from viam.resource.base import ResourceBase
from viam.resource.easy_resource import EasyResource
from viam.resource.types import Model, ModelFamily
from viam.services.mlmodel import MLModel
from viam.services.vision import CaptureAllResult, Vision
from viam.utils import ValueTypes

MODULE: Optional[Module] = None


class TfliteCpu(MLModel, EasyResource):
    MODEL: ClassVar[Model] = Model(ModelFamily("bench-sdk", "mlmodel"), "tflite_cpu")

    @classmethod
    def new(cls, config: ComponentConfig, dependencies: Mapping[ResourceName, ResourceBase]) -> Self:
        self = super().new(config, dependencies)
        self.reconfigure(config, dependencies)
        return self

    @classmethod
    def validate_config(cls, config: ComponentConfig) -> Tuple[Sequence[str], Sequence[str]]:
        if "model_path" not in config.attributes.fields:
            raise Exception("model_path is required")
        return [], []

    def reconfigure(self, config: ComponentConfig, dependencies: Mapping[ResourceName, ResourceBase]) -> None:
        fields = config.attributes.fields
        threads = int(fields["num_threads"].number_value) if "num_threads" in fields else 1
        self.interpreter = Interpreter(model_path=fields["model_path"].string_value, num_threads=threads)
        self.interpreter.allocate_tensors()
        self.input_details = self.interpreter.get_input_details()
        self.output_details = self.interpreter.get_output_details()

    async def infer(self, input_tensors: Dict[str, NDArray], *, extra: Optional[Mapping[str, ValueTypes]] = None,
                    timeout: Optional[float] = None, **kwargs) -> Dict[str, NDArray]:
        for detail, tensor in zip(self.input_details, input_tensors.values()):
            self.interpreter.set_tensor(detail["index"], tensor)
        self.interpreter.invoke()
        return {d["name"]: self.interpreter.get_tensor(d["index"]) for d in self.output_details}

    async def metadata(self, *, extra: Optional[Mapping[str, ValueTypes]] = None, timeout: Optional[float] = None,
                       **kwargs) -> Metadata:
        def info(d: Dict[str, Any]) -> TensorInfo:
            return TensorInfo(name=d["name"], data_type=np.dtype(d["dtype"]).name, shape=[int(x) for x in d["shape"]])

        return Metadata(name="tflite_cpu", type="tflite_detector",
                        input_info=[info(d) for d in self.input_details],
                        output_info=[info(d) for d in self.output_details])


class MlmodelVision(Vision, EasyResource):
    MODEL: ClassVar[Model] = Model(ModelFamily("bench-sdk", "vision"), "mlmodel")

    @classmethod
    def new(cls, config: ComponentConfig, dependencies: Mapping[ResourceName, ResourceBase]) -> Self:
        self = super().new(config, dependencies)
        self.reconfigure(config, dependencies)
        return self

    @classmethod
    def validate_config(cls, config: ComponentConfig) -> Tuple[Sequence[str], Sequence[str]]:
        if "mlmodel_name" not in config.attributes.fields:
            raise Exception("mlmodel_name is required")
        return [config.attributes.fields["mlmodel_name"].string_value], []

    def reconfigure(self, config: ComponentConfig, dependencies: Mapping[ResourceName, ResourceBase]) -> None:
        fields = config.attributes.fields
        name = MLModel.get_resource_name(fields["mlmodel_name"].string_value)
        model = dependencies.get(name)
        if model is None and MODULE is not None:  # no parent to resolve it (see the module docstring)
            model = MODULE.server.get_resource(MLModel, name)
        self.mlmodel: MLModel = model  # type: ignore[assignment]
        self.min_confidence = fields["default_minimum_confidence"].number_value if "default_minimum_confidence" in fields else 0.0
        self.labels: List[str] = []
        if "label_path" in fields:
            with open(fields["label_path"].string_value) as handle:
                self.labels = [line.strip() for line in handle]
        self.size = (300, 300)
        self.input_name = ""

    async def get_detections(self, image: ViamImage, *, extra: Optional[Mapping[str, ValueTypes]] = None,
                             timeout: Optional[float] = None, **kwargs) -> List[Detection]:
        if not self.input_name:
            meta = await self.mlmodel.metadata()
            self.input_name = meta.input_info[0].name
            self.size = (meta.input_info[0].shape[2], meta.input_info[0].shape[1])
        pil = viam_to_pil_image(image).convert("RGB")
        width, height = pil.size
        pixels = np.asarray(pil.resize(self.size, Image.BILINEAR), dtype=np.uint8)[np.newaxis]
        outputs = list((await self.mlmodel.infer({self.input_name: pixels})).values())
        boxes, classes, scores, count = outputs[0][0], outputs[1][0], outputs[2][0], int(outputs[3][0])
        detections = []
        for i in range(count):
            if scores[i] < self.min_confidence:
                continue
            ymin, xmin, ymax, xmax = (float(min(max(v, 0.0), 1.0)) for v in boxes[i])
            label = self.labels[int(classes[i])] if int(classes[i]) < len(self.labels) else str(int(classes[i]))
            detections.append(Detection(x_min=int(xmin * width), y_min=int(ymin * height), x_max=int(xmax * width),
                                        y_max=int(ymax * height), confidence=float(scores[i]), class_name=label,
                                        x_min_normalized=xmin, y_min_normalized=ymin, x_max_normalized=xmax,
                                        y_max_normalized=ymax))
        return detections

    async def get_detections_from_camera(self, camera_name: str, *, extra: Optional[Mapping[str, ValueTypes]] = None,
                                         timeout: Optional[float] = None, **kwargs) -> List[Detection]:
        raise NotImplementedError()

    async def get_classifications(self, image: ViamImage, count: int, *,
                                  extra: Optional[Mapping[str, ValueTypes]] = None, timeout: Optional[float] = None,
                                  **kwargs) -> List[Classification]:
        raise NotImplementedError()

    async def get_classifications_from_camera(self, camera_name: str, count: int, *,
                                              extra: Optional[Mapping[str, ValueTypes]] = None,
                                              timeout: Optional[float] = None, **kwargs) -> List[Classification]:
        raise NotImplementedError()

    async def get_object_point_clouds(self, camera_name: str, *, extra: Optional[Mapping[str, ValueTypes]] = None,
                                      timeout: Optional[float] = None, **kwargs) -> List[PointCloudObject]:
        raise NotImplementedError()

    async def get_detections_3d(self, camera_name: str, *, extra: Optional[Mapping[str, ValueTypes]] = None,
                                timeout: Optional[float] = None, **kwargs):
        raise NotImplementedError()

    async def capture_all_from_camera(self, camera_name: str, return_image: bool = False,
                                      return_classifications: bool = False, return_detections: bool = False,
                                      return_object_point_clouds: bool = False, return_detections_3d: bool = False, *,
                                      extra: Optional[Mapping[str, ValueTypes]] = None,
                                      timeout: Optional[float] = None, **kwargs) -> CaptureAllResult:
        raise NotImplementedError()

    async def get_properties(self, *, extra: Optional[Mapping[str, ValueTypes]] = None,
                             timeout: Optional[float] = None, **kwargs) -> Vision.Properties:
        return Vision.Properties(classifications_supported=False, detections_supported=True,
                                 object_point_clouds_supported=False)


async def main() -> None:
    global MODULE
    MODULE = Module.from_args()
    MODULE.add_model_from_registry(MLModel.API, TfliteCpu.MODEL)
    MODULE.add_model_from_registry(Vision.API, MlmodelVision.MODEL)
    await MODULE.start()


if __name__ == "__main__":
    asyncio.run(main())
