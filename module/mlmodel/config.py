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


def cpu_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS reports it, else the CPU count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True, slots=True)
class Interpreters:
    """How many interpreters a model keeps and how many threads each uses.

    Attributes:
        count: Interpreters for calls that overlap (one call each at a time).
        threads: Threads of each of those.
        solo_threads: Threads of the extra interpreter a call gets when it is alone (0: no such interpreter).
    """

    count: int
    threads: int
    solo_threads: int = 0


@dataclass(frozen=True, slots=True)
class TFLiteConfig:
    """Parsed ``attributes`` of a ``tflite_cpu`` resource."""

    model_path: str
    label_path: str = ""
    num_threads: int | None = None  # None: not set (automatic, see interpreters())
    pool_size: int | None = None
    runtime: str = "auto"
    max_model_size_mb: int = DEFAULT_MODEL_MAX_BYTES // MIB  # larger model files are refused (module/files.py)

    @property
    def max_model_bytes(self) -> int:
        return self.max_model_size_mb * MIB

    def interpreters(self, cores: int | None = None) -> Interpreters:
        """The interpreters to build on a machine with ``cores`` cores (default: this one's).

        Neither ``num_threads`` nor ``pool_size`` set (the defaults): one single-thread interpreter per core for
        calls that overlap, plus one interpreter with every core for a call that is alone (module/mlmodel/pool.py),
        so one caller gets the latency of all cores and many callers the throughput of all cores. Either one set:
        exactly ``pool_size`` (default: cores) interpreters of ``num_threads`` (default 1) threads, nothing added.
        """
        cores = cpu_cores() if cores is None else cores
        if self.num_threads is None and self.pool_size is None:
            return Interpreters(count=cores, threads=1, solo_threads=cores if cores > 1 else 0)
        return Interpreters(count=self.pool_size or cores, threads=self.num_threads or 1)

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> TFLiteConfig:
        attrs = Attributes(raw)
        model_path = attrs.string("model_path", required=True)
        if not model_path.endswith(".tflite"):
            raise ConfigError(f"attribute 'model_path' must name a .tflite file, got {model_path!r}")
        config = cls(
            model_path=model_path,
            label_path=attrs.string("label_path"),
            num_threads=attrs.integer("num_threads", low=1, high=256),
            pool_size=attrs.integer("pool_size", low=1, high=64),
            runtime=attrs.choice("runtime", RUNTIME_CHOICES, default="auto"),
            max_model_size_mb=attrs.integer(MODEL_SIZE_ATTRIBUTE, default=DEFAULT_MODEL_MAX_BYTES // MIB, low=1,
                                            high=MODEL_MAX_BYTES_CEILING // MIB) or DEFAULT_MODEL_MAX_BYTES // MIB,
        )
        # Viam's built-in model accepts and ignores these; accept them too so configs move over unchanged.
        attrs.finish(known=("package_reference",))
        return config

    def dependencies(self) -> Dependencies:
        return Dependencies()
