"""Case 5: FlatTensor encode/decode against the viam-sdk helpers."""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.stats import summary, time_calls
from module.gen.service.mlmodel.v1 import mlmodel_pb2 as mlpb
from module.mlmodel import flat_tensors


def flat_tensor(repeats: int) -> dict[str, Any]:
    array = np.random.default_rng(0).standard_normal(1_000_000).astype(np.float32)
    # The module encodes a map of tensors (an InferResponse's outputs); time one 1M-element entry.
    tensors = {"x": array}
    encoded = flat_tensors.encode_all(tensors)
    assert np.array_equal(flat_tensors.decode_all(encoded)["x"], array)
    wire = encoded.SerializeToString()
    return {
        "elements": array.size,
        "encode_ms": summary(time_calls(lambda: flat_tensors.encode_all(tensors), repeats, warmup=2)),
        "decode_ms": summary(time_calls(lambda: flat_tensors.decode_all(encoded), repeats, warmup=2)),
        "encode_serialize_ms": summary(time_calls(lambda: flat_tensors.encode_all(tensors).SerializeToString(), repeats, 2)),
        "parse_decode_ms": summary(time_calls(lambda: flat_tensors.decode_all(mlpb.FlatTensors.FromString(wire)), repeats, 2)),
    }
