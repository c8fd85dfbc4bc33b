"""viam.module.v1.ModuleService: a thin adapter from the wire to module/lifecycle.py."""

from __future__ import annotations

from collections.abc import Mapping

import grpc

from module.gen.app.v1 import robot_pb2 as app_pb2
from module.gen.common.v1 import common_pb2
from module.gen.module.v1 import module_pb2 as pb
from module.gen.module.v1 import module_pb2_grpc
from module.gen.robot.v1 import robot_pb2
from module.resource.lifecycle import Lifecycle, ResourceConfig
from module.resource.names import API
from module.resource.structs import struct_to_dict


def resource_config(config: app_pb2.ComponentConfig) -> ResourceConfig:
    api = config.api or (f"{config.namespace}:service:{config.type}" if config.namespace and config.type else "")
    return ResourceConfig(name=config.name, api=api, model=config.model,
                          attributes=struct_to_dict(config.attributes),
                          log_level=config.log_configuration.level if config.HasField("log_configuration") else "")


class ModuleServicer(module_pb2_grpc.ModuleServiceServicer):
    def __init__(self, lifecycle: Lifecycle, proto_services: Mapping[API, str]) -> None:
        self._lifecycle = lifecycle
        self._proto_services = proto_services

    def Ready(self, request: pb.ReadyRequest, context: grpc.ServicerContext) -> pb.ReadyResponse:
        served = self._lifecycle.ready(request.raw_parent_address or request.parent_address)
        handlers = [
            pb.HandlerDefinition(
                subtype=robot_pb2.ResourceRPCSubtype(
                    subtype=common_pb2.ResourceName(namespace=api.namespace, type=api.type, subtype=api.subtype),
                    proto_service=self._proto_services[api]),
                models=models)
            for api, models in served.items()
        ]
        return pb.ReadyResponse(ready=True, handlermap=pb.HandlerMap(handlers=handlers))

    def ValidateConfig(self, request: pb.ValidateConfigRequest, context: grpc.ServicerContext) -> pb.ValidateConfigResponse:
        deps = self._lifecycle.validate(resource_config(request.config))
        return pb.ValidateConfigResponse(dependencies=deps.required, optional_dependencies=deps.optional)

    def AddResource(self, request: pb.AddResourceRequest, context: grpc.ServicerContext) -> pb.AddResourceResponse:
        self._lifecycle.add(resource_config(request.config), request.dependencies)
        return pb.AddResourceResponse()

    def ReconfigureResource(self, request: pb.ReconfigureResourceRequest,
                            context: grpc.ServicerContext) -> pb.ReconfigureResourceResponse:
        self._lifecycle.reconfigure(resource_config(request.config), request.dependencies)
        return pb.ReconfigureResourceResponse()

    def RemoveResource(self, request: pb.RemoveResourceRequest, context: grpc.ServicerContext) -> pb.RemoveResourceResponse:
        self._lifecycle.remove(request.name)
        return pb.RemoveResourceResponse()
