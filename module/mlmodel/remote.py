"""An mlmodel served elsewhere (viam-server or another module), called through the parent's MLModelService."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import grpc
import numpy as np
from numpy.typing import NDArray

from module.gen.service.mlmodel.v1 import mlmodel_pb2, mlmodel_pb2_grpc
from module.mlmodel import flat_tensors
from module.mlmodel.types import ModelInfo
from module.mlmodel.wire import info_from_proto
from module.parent import DEFAULT_TIMEOUT, ParentClient, translate


class RemoteModel:
    """The MLModel interface over the parent; its metadata is read once (viam-server rebuilds dependants on change)."""

    def __init__(self, parent: ParentClient, name: str) -> None:
        self.parent = parent
        self._name = name
        self._stub_for: tuple[grpc.Channel, mlmodel_pb2_grpc.MLModelServiceStub] | None = None
        self._info: ModelInfo | None = None

    @property
    def _stub(self) -> mlmodel_pb2_grpc.MLModelServiceStub:
        """A stub on the parent's current channel (ParentClient.reconnect replaces it after a parent restart)."""
        channel = self.parent.channel
        cached = self._stub_for
        if cached is None or cached[0] is not channel:
            cached = (channel, mlmodel_pb2_grpc.MLModelServiceStub(channel))
            self._stub_for = cached
        return cached[1]

    def metadata(self) -> ModelInfo:
        if self._info is None:
            try:
                reply = self._stub.Metadata(mlmodel_pb2.MetadataRequest(name=self._name), timeout=DEFAULT_TIMEOUT)
            except grpc.RpcError as exc:
                raise translate(exc, f"reading the metadata of mlmodel {self._name!r}") from None
            self._info = info_from_proto(reply.metadata)
        return self._info

    def infer(self, inputs: Mapping[str, NDArray[Any]], timeout: float | None = None) -> dict[str, NDArray[Any]]:
        request = mlmodel_pb2.InferRequest(name=self._name, input_tensors=flat_tensors.encode_all(inputs))
        try:
            reply = self._stub.Infer(request, timeout=timeout or DEFAULT_TIMEOUT)
        except grpc.RpcError as exc:
            raise translate(exc, f"running mlmodel {self._name!r}") from None
        return {k: np.asarray(v) for k, v in flat_tensors.decode_all(reply.output_tensors).items()}
