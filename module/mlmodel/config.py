"""Config of the tflite_cpu mlmodel: same attribute names as Viam's tflite_cpu, plus pool size and runtime."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from module.errors import ConfigError
from module.files import DEFAULT_MODEL_MAX_BYTES, MIB, MODEL_MAX_BYTES_CEILING, MODEL_SIZE_ATTRIBUTE
from module.mlmodel.runtime import RUNTIME_CHOICES
from module.resource.attributes import Attributes
from module.resource.base import Dependencies


def default_pool_size() -> int:
    """One interpreter per core: with num_threads=1 each, concurrent calls scale with the cores."""
    return max(1, os.cpu_count() or 1)


@dataclass(frozen=True, slots=True)
class TFLiteConfig:
    """Parsed ``attributes`` of a ``tflite_cpu`` resource."""

    model_path: str
    label_path: str = ""
    num_threads: int = 1
    pool_size: int = 1
    runtime: str = "auto"
    max_model_size_mb: int = DEFAULT_MODEL_MAX_BYTES // MIB  # larger model files are refused (module/files.py)

    @property
    def max_model_bytes(self) -> int:
        return self.max_model_size_mb * MIB

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> TFLiteConfig:
        attrs = Attributes(raw)
        model_path = attrs.string("model_path", required=True)
        if not model_path.endswith(".tflite"):
            raise ConfigError(f"attribute 'model_path' must name a .tflite file, got {model_path!r}")
        config = cls(
            model_path=model_path,
            label_path=attrs.string("label_path"),
            num_threads=attrs.integer("num_threads", default=1, low=1, high=256) or 1,
            pool_size=attrs.integer("pool_size", default=default_pool_size(), low=1, high=64) or 1,
            runtime=attrs.choice("runtime", RUNTIME_CHOICES, default="auto"),
            max_model_size_mb=attrs.integer(MODEL_SIZE_ATTRIBUTE, default=DEFAULT_MODEL_MAX_BYTES // MIB, low=1,
                                            high=MODEL_MAX_BYTES_CEILING // MIB) or DEFAULT_MODEL_MAX_BYTES // MIB,
        )
        # Viam's built-in model accepts and ignores these; accept them too so configs move over unchanged.
        attrs.finish(known=("package_reference",))
        return config

    def dependencies(self) -> Dependencies:
        return Dependencies()
