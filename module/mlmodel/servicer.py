"""viam.service.mlmodel.v1.MLModelService: a thin adapter from the wire to the resource's model object."""

from __future__ import annotations

import grpc

from module.gen.common.v1 import common_pb2
from module.gen.service.mlmodel.v1 import mlmodel_pb2 as pb
from module.gen.service.mlmodel.v1 import mlmodel_pb2_grpc
from module.mlmodel import flat_tensors
from module.mlmodel.model import TFLiteModel
from module.mlmodel.wire import info_to_proto
from module.resource.manager import ResourceManager
from module.resource.names import MLMODEL_API
from module.resource.structs import dict_to_struct

SERVICE = pb.DESCRIPTOR.services_by_name["MLModelService"].full_name


class MLModelServicer(mlmodel_pb2_grpc.MLModelServiceServicer):
    def __init__(self, resources: ResourceManager) -> None:
        self._resources = resources

    def _model(self, name: str) -> TFLiteModel:
        return self._resources.get(MLMODEL_API, name)  # type: ignore[return-value]

    def Infer(self, request: pb.InferRequest, context: grpc.ServicerContext) -> bytes:
        """The InferResponse already serialized (tensors.infer_response_bytes); add_to_server sends it as is."""
        model = self._model(request.name)
        return flat_tensors.infer_response_bytes(model.infer(flat_tensors.decode_all(request.input_tensors)))

    def Metadata(self, request: pb.MetadataRequest, context: grpc.ServicerContext) -> pb.MetadataResponse:
        return pb.MetadataResponse(metadata=info_to_proto(self._model(request.name).metadata()))

    def GetStatus(self, request: common_pb2.GetStatusRequest, context: grpc.ServicerContext) -> common_pb2.GetStatusResponse:
        return common_pb2.GetStatusResponse(result=dict_to_struct(self._model(request.name).status()))


def _already_serialized(response: bytes) -> bytes:
    return response


def method_handlers(servicer: MLModelServicer) -> dict[str, grpc.RpcMethodHandler]:
    """What the generated ``add_MLModelServiceServicer_to_server`` registers, except that Infer's response goes out
    as the bytes the servicer built."""
    return {
        "Infer": grpc.unary_unary_rpc_method_handler(servicer.Infer, request_deserializer=pb.InferRequest.FromString,
                                                     response_serializer=_already_serialized),
        "Metadata": grpc.unary_unary_rpc_method_handler(servicer.Metadata,
                                                        request_deserializer=pb.MetadataRequest.FromString,
                                                        response_serializer=pb.MetadataResponse.SerializeToString),
        "GetStatus": grpc.unary_unary_rpc_method_handler(servicer.GetStatus,
                                                         request_deserializer=common_pb2.GetStatusRequest.FromString,
                                                         response_serializer=common_pb2.GetStatusResponse.SerializeToString),
    }


def add_to_server(servicer: MLModelServicer, server: grpc.Server) -> None:
    handlers = method_handlers(servicer)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    server.add_registered_method_handlers(SERVICE, handlers)
