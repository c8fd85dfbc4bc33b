"""What an ML model looks like to the rest of the module, whether it runs here or behind the parent."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from numpy.typing import NDArray

LABEL_TYPES = ("", "tensor_value", "tensor_axis")


@dataclass(frozen=True, slots=True)
class FileInfo:
    """A file associated with a tensor (labels, descriptions)."""

    name: str
    description: str = ""
    label_type: str = ""  # one of LABEL_TYPES


@dataclass(frozen=True, slots=True)
class TensorInfo:
    """One input or output tensor. ``shape`` uses -1 for dimensions that vary per call."""

    name: str
    dtype: str  # numpy dtype name: float32, uint8, int8, ...
    shape: tuple[int, ...]
    description: str = ""
    associated_files: tuple[FileInfo, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """A model's metadata, as the mlmodel Metadata RPC reports it."""

    name: str
    type: str
    description: str
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]


class MLModel(Protocol):
    """An inference engine: named arrays in, named arrays out."""

    def metadata(self) -> ModelInfo: ...

    def infer(self, inputs: Mapping[str, NDArray[Any]]) -> dict[str, NDArray[Any]]: ...

