"""viam.service.mlmodel.v1.MLModelService: a thin adapter from the wire to the resource's model object."""

from __future__ import annotations

import grpc

from module import tensors
from module.config_attrs import dict_to_struct
from module.gen.common.v1 import common_pb2
from module.gen.service.mlmodel.v1 import mlmodel_pb2 as pb
from module.gen.service.mlmodel.v1 import mlmodel_pb2_grpc
from module.mlmodel.proto import info_to_proto
from module.mlmodel.tflite_model import TFLiteModel
from module.resource_names import MLMODEL_API
from module.resources import ResourceManager


class MLModelServicer(mlmodel_pb2_grpc.MLModelServiceServicer):
    def __init__(self, resources: ResourceManager) -> None:
        self._resources = resources

    def _model(self, name: str) -> TFLiteModel:
        return self._resources.get(MLMODEL_API, name)  # type: ignore[return-value]

    def Infer(self, request: pb.InferRequest, context: grpc.ServicerContext) -> pb.InferResponse:
        model = self._model(request.name)
        return tensors.infer_response(model.infer(tensors.decode_all(request.input_tensors)))

    def Metadata(self, request: pb.MetadataRequest, context: grpc.ServicerContext) -> pb.MetadataResponse:
        return pb.MetadataResponse(metadata=info_to_proto(self._model(request.name).metadata()))

    def GetStatus(self, request: common_pb2.GetStatusRequest, context: grpc.ServicerContext) -> common_pb2.GetStatusResponse:
        return common_pb2.GetStatusResponse(result=dict_to_struct(self._model(request.name).status()))
