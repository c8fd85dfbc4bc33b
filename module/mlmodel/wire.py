"""mlmodel Metadata <-> protobuf (shared by the servicer and by the client of a remote mlmodel)."""

from __future__ import annotations

from module.gen.service.mlmodel.v1 import mlmodel_pb2 as pb
from module.mlmodel.types import FileInfo, ModelInfo, TensorInfo
from module.resource.structs import dict_to_struct, struct_to_dict

_LABEL_TYPE = {"": pb.LABEL_TYPE_UNSPECIFIED, "tensor_value": pb.LABEL_TYPE_TENSOR_VALUE,
               "tensor_axis": pb.LABEL_TYPE_TENSOR_AXIS}
_LABEL_NAME = {v: k for k, v in _LABEL_TYPE.items()}


def info_to_proto(info: ModelInfo) -> pb.Metadata:
    return pb.Metadata(name=info.name, type=info.type, description=info.description,
                       input_info=[_tensor_to_proto(t) for t in info.inputs],
                       output_info=[_tensor_to_proto(t) for t in info.outputs])


def _tensor_to_proto(t: TensorInfo) -> pb.TensorInfo:
    return pb.TensorInfo(
        name=t.name, description=t.description, data_type=t.dtype, shape=list(t.shape),
        associated_files=[pb.File(name=f.name, description=f.description, label_type=_LABEL_TYPE[f.label_type])
                          for f in t.associated_files],
        extra=dict_to_struct(t.extra) if t.extra else None)


def info_from_proto(message: pb.Metadata) -> ModelInfo:
    return ModelInfo(name=message.name, type=message.type, description=message.description,
                     inputs=tuple(_tensor_from_proto(t) for t in message.input_info),
                     outputs=tuple(_tensor_from_proto(t) for t in message.output_info))


def _tensor_from_proto(t: pb.TensorInfo) -> TensorInfo:
    return TensorInfo(
        name=t.name, dtype=t.data_type, shape=tuple(t.shape), description=t.description,
        associated_files=tuple(FileInfo(f.name, f.description, _LABEL_NAME.get(f.label_type, ""))
                               for f in t.associated_files),
        extra=struct_to_dict(t.extra) if t.HasField("extra") else {})
