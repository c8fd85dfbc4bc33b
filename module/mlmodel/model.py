"""The tflite_cpu model: a TFLite flatbuffer loaded once into memory and run by a pool of interpreters.

No gRPC here: named NumPy arrays in, named NumPy arrays out (module/servicers/mlmodel.py adapts it to the wire).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from module import call_state
from module.errors import InvalidInputError, ModelLoadError
from module.files import model_limit, read_config_file
from module.mlmodel.config import TFLiteConfig
from module.mlmodel.describe import describe_model
from module.mlmodel.graph import find_postprocess_outputs
from module.mlmodel.labels import extract_embedded, read_label_file, write_labels
from module.mlmodel.model_check import check_model_structure
from module.mlmodel.pool import Pool
from module.mlmodel.runtime import Runtime, load_runtime
from module.mlmodel.tflite_metadata import ModelMetadata, read_model_metadata
from module.mlmodel.types import ModelInfo
from module.mlmodel.ultralytics import read_ultralytics_metadata

_LOG = logging.getLogger(__name__)


@dataclass(slots=True)
class _Input:
    name: str  # the name Metadata reports (TFLite metadata name when present)
    aliases: frozenset[str]  # every name a caller may use: metadata name and interpreter name
    index: int
    dtype: np.dtype[Any]
    signature: tuple[int, ...]  # -1 = any size


class _Slot:
    """One interpreter plus the input shapes it is currently allocated for."""

    def __init__(self, interpreter: Any) -> None:
        self.interpreter = interpreter
        self.shapes = {d["index"]: tuple(int(x) for x in d["shape"]) for d in interpreter.get_input_details()}
        self.outputs = [d["index"] for d in interpreter.get_output_details()]


class TFLiteModel:
    """A loaded, warmed-up TFLite model. Thread-safe: concurrent ``infer`` calls run on different interpreters."""

    def __init__(self, config: TFLiteConfig, *, name: str = "") -> None:
        started = time.perf_counter()
        self.config = config
        self._data = _read_model(config.model_path, config.max_model_bytes)
        self.sha256 = hashlib.sha256(self._data).hexdigest()
        self.runtime: Runtime = load_runtime(config.runtime)
        self._tflite_metadata = _safe_metadata(self._data, config.model_path)
        self.ultralytics = read_ultralytics_metadata(self._data)
        self._postprocess = find_postprocess_outputs(self._data)
        self.interpreters = config.interpreters()
        first = self._new_slot(self.interpreters.threads)
        self.warmup_ms = self._warm_up(first)
        labels_path = self._labels_path()
        self._info = describe_model(first.interpreter, self._tflite_metadata, labels_path, fallback_name=name,
                                    ultralytics=self.ultralytics, postprocess=self._postprocess)
        self._inputs = self._input_specs(first)
        self._output_names = [t.name for t in self._info.outputs]
        slots = [first] + [self._new_slot(self.interpreters.threads) for _ in range(self.interpreters.count - 1)]
        solo = self._new_slot(self.interpreters.solo_threads) if self.interpreters.solo_threads else None
        for slot in [*slots[1:], *([solo] if solo else [])]:
            self._warm_up(slot)
        self._pool: Pool[_Slot] = Pool(slots, solo=solo)
        self._count_lock = threading.Lock()
        self.infer_count = 0
        self.load_ms = (time.perf_counter() - started) * 1000
        _LOG.info("loaded %s with %s %s: %d interpreter(s) x %d thread(s)%s, warm-up invoke %.1f ms, load %.0f ms",
                  config.model_path, self.runtime.name, self.runtime.version, len(slots), self.interpreters.threads,
                  f" + 1 x {self.interpreters.solo_threads} threads for a call that is alone" if solo else "",
                  self.warmup_ms, self.load_ms)

    # --- loading -------------------------------------------------------------------------------------------------

    def _new_slot(self, threads: int) -> _Slot:
        try:
            interpreter = self.runtime.interpreter_class(model_content=self._data, num_threads=threads)
            interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelLoadError(f"attribute 'model_path': {self.config.model_path} could not be loaded by "
                                 f"{self.runtime.name}: {_first_line(exc)}") from None
        return _Slot(interpreter)

    def _warm_up(self, slot: _Slot) -> float:
        """Run one all-zeros inference so output shapes are real and lazy kernels/delegates are prepared."""
        interpreter = slot.interpreter
        try:
            for detail in interpreter.get_input_details():
                # tflite-runtime 2.14 cannot set some input types (uint16: "Got value of type NOTYPE"): refuse the
                # model at AddResource with the runtime's reason rather than fail every call with INTERNAL.
                interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], dtype=detail["dtype"]))
            started = time.perf_counter()
            interpreter.invoke()
        except (ValueError, RuntimeError) as exc:
            raise ModelLoadError(f"attribute 'model_path': {self.config.model_path} failed its warm-up inference: "
                                 f"{_first_line(exc)}") from None
        return (time.perf_counter() - started) * 1000

    def _labels_path(self) -> str:
        if self.config.label_path:
            read_label_file(self.config.label_path)  # fail now, naming the attribute and path, not on the first call
            return self.config.label_path
        if self.ultralytics is not None and self.ultralytics.names:
            # Before the TFLite metadata: 8.0-8.3 exports declare their whole metadata dict as the label file.
            return write_labels(self.ultralytics.names, "ultralytics-names.txt")
        return extract_embedded(self._tflite_metadata) or ""

    def _input_specs(self, slot: _Slot) -> list[_Input]:
        specs = []
        for info, detail in zip(self._info.inputs, slot.interpreter.get_input_details(), strict=True):
            signature = detail.get("shape_signature")
            signature = detail["shape"] if signature is None or len(signature) == 0 else signature
            specs.append(_Input(name=info.name, aliases=frozenset({info.name, detail["name"]}), index=detail["index"],
                                dtype=np.dtype(detail["dtype"]), signature=tuple(int(x) for x in signature)))
        return specs

    # --- serving -------------------------------------------------------------------------------------------------

    def metadata(self) -> ModelInfo:
        return self._info

    def infer(self, inputs: Mapping[str, NDArray[Any]]) -> dict[str, NDArray[Any]]:
        """Run the model. Raises InvalidInputError (naming what was expected and what came) for bad inputs."""
        arrays = self._match_inputs(inputs)
        with call_state.working(), self._pool.lease() as slot:
            interpreter = slot.interpreter
            resized = False
            for spec, array in arrays:
                if slot.shapes[spec.index] != array.shape:
                    interpreter.resize_tensor_input(spec.index, array.shape, strict=False)
                    slot.shapes[spec.index] = array.shape
                    resized = True
            if resized:  # re-allocate only when a dynamic input's shape changed
                interpreter.allocate_tensors()
            for spec, array in arrays:
                interpreter.set_tensor(spec.index, array)
            interpreter.invoke()
            outputs = {name: interpreter.get_tensor(index) for name, index in zip(self._output_names, slot.outputs, strict=True)}
        with self._count_lock:
            self.infer_count += 1
        return outputs

    def _expected(self) -> str:
        """What this model takes, for error messages (built only when a call is refused)."""
        return ", ".join(f"{s.name!r} ({s.dtype}, shape {_shape_text(s.signature)})" for s in self._inputs)

    def _match_inputs(self, inputs: Mapping[str, NDArray[Any]]) -> list[tuple[_Input, NDArray[Any]]]:
        if len(inputs) == 1 and len(self._inputs) == 1:
            # Like Viam's C++ SDK: a lone tensor feeds the lone input whatever its name, once its dtype fits.
            (given, array), = inputs.items()
            return [(self._inputs[0], self._check(self._inputs[0], given, array))]
        by_alias = {alias: spec for spec in self._inputs for alias in spec.aliases}
        unknown = sorted(set(inputs) - set(by_alias))
        if unknown:
            raise InvalidInputError(f"unknown input tensor(s) {', '.join(map(repr, unknown))}; "
                                    f"this model takes {self._expected()}")
        matched = {by_alias[name].index: (by_alias[name], self._check(by_alias[name], name, a)) for name, a in inputs.items()}
        missing = [s.name for s in self._inputs if s.index not in matched]
        if missing:
            raise InvalidInputError(f"missing input tensor(s) {', '.join(map(repr, missing))}; "
                                    f"this model takes {self._expected()}")
        return list(matched.values())

    @staticmethod
    def _check(spec: _Input, given: str, array: NDArray[Any]) -> NDArray[Any]:
        if array.dtype != spec.dtype:
            raise InvalidInputError(f"input tensor {given!r} has dtype {array.dtype}; input {spec.name!r} takes {spec.dtype}")
        shape = array.shape
        fits = len(shape) == len(spec.signature) and all(
            (want == -1 and got > 0) or want == got for want, got in zip(spec.signature, shape, strict=False))
        if not fits:
            raise InvalidInputError(f"input tensor {given!r} has shape {_shape_text(shape)}; input {spec.name!r} takes "
                                    f"shape {_shape_text(spec.signature)} (-1 = any size)")
        return np.ascontiguousarray(array)

    def status(self) -> dict[str, Any]:
        pool = self._pool.stats()
        return {
            "model_path": self.config.model_path,
            "model_sha256": self.sha256,
            "runtime": self.runtime.name,
            "runtime_version": self.runtime.version,
            "num_threads": self.interpreters.threads,
            "pool_size": self._pool.size,
            # the extra interpreter a call gets when it is alone (default attributes only; 0: none)
            "solo_num_threads": self.interpreters.solo_threads,
            "solo_infer_count": self._pool.solo_leases,
            "load_ms": round(self.load_ms, 1),
            "warmup_invoke_ms": round(self.warmup_ms, 2),
            "infer_count": self.infer_count,
            "pool_busy": pool.busy,  # interpreters running a call now
            "pool_queued": pool.queued,  # calls waiting for a free interpreter now
            "calls_gave_up": pool.gave_up,  # calls cancelled or expired before they ran, since the load
        }

    def close(self) -> None:
        self._pool.close()


def _read_model(path: str, max_bytes: int) -> bytes:
    """The whole file in memory: replacing it on disk later can never corrupt a running interpreter.

    Read through module/files.py (a regular file, at most ``max_bytes``: never /dev/zero or a FIFO), then checked
    structurally (module/mlmodel/model_check.py) so a file cut short is refused before a runtime that does not
    verify flatbuffers (tflite-runtime 2.14) reads past its end and takes the process down.
    """
    data = read_config_file(path, model_limit(max_bytes))
    try:
        check_model_structure(data)
    except ValueError as exc:
        raise ModelLoadError(f"attribute 'model_path': {path} is not a usable TFLite model: {exc}") from None
    return data


def _safe_metadata(data: bytes, path: str) -> ModelMetadata | None:
    try:
        return read_model_metadata(data)
    except ValueError as exc:
        _LOG.warning("ignoring unreadable TFLite metadata in %s: %s", path, exc)
        return None


def _shape_text(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _first_line(exc: BaseException, limit: int = 300) -> str:
    """The runtime's message, first line only and capped: some repeat one error per tensor on a single line."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line if len(line) <= limit else line[:limit] + " [...]"
