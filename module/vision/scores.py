"""Scores and classes: dequantise, turn classifier outputs into probabilities, and decide per class (label) which
scores are kept. Where Viam's mlmodel vision service has known bugs they are fixed on purpose: ``label_confidences``
stacks on ``default_minimum_confidence`` instead of replacing it, out-of-range class ids get a numeric label instead of
failing the whole call, and quantised scores are dequantised instead of divided by 100."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from module.vision.config import Thresholds

_PROBABILITY_TOLERANCE: Final = 1e-6
# np.strings is NumPy >= 2 only; np.char (the same ufuncs, legacy in 2.x) is what NumPy 1.26 has. requirements.txt
# allows 1.26, and tflite-runtime (the fallback where ai-edge-litert has no wheel) needs it.
_lower = np.strings.lower if hasattr(np, "strings") else np.char.lower


def scores_to_probabilities(values: NDArray[np.generic]) -> NDArray[np.float32]:
    """Classifier outputs -> probabilities (same shape, float32, never NaN).

    * All values in [0, 1] (within 1e-6, NaN counted as 0): already probabilities, returned clipped.
    * More than one value and any outside [0, 1]: logits -> softmax over all values. NaN counts as -inf;
      +inf entries share the probability equally; all -inf gives zeros.
    * A single value outside [0, 1]: a logit -> sigmoid (NaN -> 0).

    Viam uses [-1, 1] instead of [0, 1] for the single-value case; a value in [-1, 0) cannot be a probability,
    so it is treated as a logit here.
    """
    v = np.array(values, dtype=np.float32)
    if v.size == 0:
        return v
    tol = _PROBABILITY_TOLERANCE
    nan = np.isnan(v)
    if bool(np.all(nan | ((v >= -tol) & (v <= 1 + tol)))):
        return np.clip(np.where(nan, np.float32(0), v), 0.0, 1.0).astype(np.float32)
    if v.size == 1:
        with np.errstate(over="ignore"):
            out = np.where(nan, np.float32(0), 1.0 / (1.0 + np.exp(-np.where(nan, 0, v))))
        return out.astype(np.float32)
    v[nan] = -np.inf
    posinf = np.isposinf(v)
    if posinf.any():
        shares: NDArray[np.float32] = (posinf / np.float32(posinf.sum())).astype(np.float32)
        return shares
    top = v.max()
    if np.isneginf(top):
        return np.zeros_like(v)
    exp = np.exp(v - top)
    probabilities: NDArray[np.float32] = (exp / exp.sum()).astype(np.float32)
    return probabilities


@dataclass(frozen=True, slots=True)
class ConfidenceRule:
    """Which detections/classifications to keep, from the vision service config.

    Attributes:
        default: ``default_minimum_confidence`` (0 keeps everything).
        per_label: ``label_confidences``; keys compared case-insensitively (stored lower-cased).
        allow: Class allow-list compared case-insensitively (stored lower-cased), or None for all labels.
    """

    default: float = 0.0
    per_label: Mapping[str, float] = field(default_factory=dict)
    allow: frozenset[str] | None = None

    def __post_init__(self) -> None:
        lowered = {str(k).lower(): float(v) for k, v in self.per_label.items()}
        object.__setattr__(self, "per_label", MappingProxyType(lowered))
        if self.allow is not None:
            object.__setattr__(self, "allow", frozenset(str(a).lower() for a in self.allow))

    @property
    def uniform(self) -> bool:
        """Every label needs ``default``: no per-label threshold, no allow-list."""
        return not self.per_label and self.allow is None

    @property
    def floor(self) -> float:
        """The lowest score any label can be kept with (a first filter before labels are looked up)."""
        return min([self.default, *self.per_label.values()])

    def minimums(self, labels: Sequence[str]) -> NDArray[np.float64]:
        """The score each entry needs to be kept (``score >= minimum``; NaN never is): its label's threshold, or +inf
        when the label is not allowed.

        A label listed in ``per_label`` uses its own threshold; every other label uses ``default`` (stacking, unlike
        Viam, where listing any label drops all unlisted ones).
        """
        if self.uniform:
            return np.full(len(labels), self.default, dtype=np.float64)
        if not len(labels):
            return np.zeros(0, dtype=np.float64)
        # Per distinct label, not per entry: detections repeat few labels.
        unique, inverse = np.unique(_lower(np.asarray(labels, dtype=np.str_)), return_inverse=True)
        names = [str(u) for u in unique]
        needed = np.array([self.per_label.get(u, self.default) if self.allow is None or u in self.allow else np.inf
                           for u in names], dtype=np.float64)
        return needed[inverse].reshape(-1)


@dataclass(frozen=True, slots=True)
class ClassTable:
    """A classifier's classes, by output index: the label reported and the score needed to be kept.

    Built once per (labels, thresholds, class count) rather than per call: for the 1,001 ImageNet classes, naming
    every class and matching the names against the thresholds cost 1-5 ms a call, more than some models' invoke.
    """

    names: tuple[str, ...]
    minimums: NDArray[np.float64]

    @classmethod
    def build(cls, labels: Sequence[str], rule: ConfidenceRule, count: int) -> ClassTable:
        names = tuple(label_for(i, labels) for i in range(count))
        return cls(names, rule.minimums(names))

    def top(self, probs: NDArray[np.floating[Any]], n: int) -> list[tuple[str, float]]:
        """(label, probability) of the kept classes, most probable first (ties in index order), at most ``n``
        (``n <= 0``: all). NaN is never kept."""
        flat = np.asarray(probs).reshape(-1)
        if flat.size != len(self.names):
            raise ValueError(f"{flat.size} probabilities for a table of {len(self.names)} classes")
        kept = np.flatnonzero(flat >= self.minimums)
        order = kept[np.argsort(-flat[kept], kind="stable")]
        if n > 0:
            order = order[:n]
        return [(self.names[i], float(flat[i])) for i in order]


def label_for(index: int, labels: Sequence[str]) -> str:
    """``labels[index]`` when in range and non-empty, else the index as text (e.g. ``"91"``). Never raises."""
    try:
        i = int(index)
        if 0 <= i < len(labels) and labels[i]:
            return str(labels[i])
        return str(i)
    except Exception:  # noqa: BLE001 - NaN/inf/odd objects: fall back to their text
        return str(index)


def rule_of(thresholds: Thresholds) -> ConfidenceRule:
    # Scores are float32 (model outputs, dequantised values, softmax): compare the thresholds at that precision, or a
    # score of 0.7 (float32 0.69999999) would fail default_minimum_confidence 0.7 although "score >= value" is kept.
    return ConfidenceRule(default=_f32(thresholds.default_minimum_confidence or 0.0),
                          per_label={label: _f32(v) for label, v in thresholds.label_confidences.items()},
                          allow=thresholds.allowed_labels)


def _f32(value: float) -> float:
    return float(np.float32(value))
