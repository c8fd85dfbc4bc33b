"""How tests/e2e/test_sdk_compat.py and tests/support/sdk_client_script.py (which runs in the SDK's venv) pass bytes and arrays
to each other in JSON: base64 text, and arrays as dtype, shape and base64 of their C-order bytes.

Standard library and NumPy only: the script imports it from the SDK venv, where the module package is off limits.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import numpy as np


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def array_to_json(array: np.ndarray) -> dict[str, Any]:
    return {"dtype": array.dtype.name, "shape": list(array.shape), "data": b64(np.ascontiguousarray(array).tobytes())}


def array_from_json(spec: Mapping[str, Any]) -> np.ndarray:
    return np.frombuffer(base64.b64decode(spec["data"]), dtype=spec["dtype"]).reshape(spec["shape"])
