"""A classifier's raw output -> Classifications (probabilities, per-class thresholds, top n)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from module.vision.config import Thresholds
from module.vision.layouts import dequantize
from module.vision.plan import ClassifierPlan, read_output
from module.vision.scores import ClassTable, rule_of, scores_to_probabilities


@dataclass(frozen=True, slots=True)
class Classification:
    class_name: str
    confidence: float


def class_probabilities(outputs: Mapping[str, NDArray[Any]], plan: ClassifierPlan) -> NDArray[np.float32]:
    """The classifier's output as one probability per class (dequantised; logits through softmax/sigmoid)."""
    values = dequantize(read_output(outputs, plan.probability), plan.quant).reshape(-1)
    return scores_to_probabilities(values)


def class_table(labels: tuple[str, ...], thresholds: Thresholds, count: int) -> ClassTable:
    return ClassTable.build(labels, rule_of(thresholds), count)


def classifications(probs: NDArray[np.float32], table: ClassTable, n: int) -> list[Classification]:
    """The kept classes, most probable first, at most ``n`` (``n <= 0``: all)."""
    return [Classification(name, p) for name, p in table.top(probs, n)]
