"""What the model graph itself says about its outputs: a ``TFLite_Detection_PostProcess`` op and its output order.

The op always produces, in this order: boxes ``[1, K, 4]``, classes ``[1, K]``, scores ``[1, K]``, count ``[1]``
(tensorflow/lite/kernels/detection_postprocess.cc). Exports then list those tensors as the model's outputs in
their own order: TF1 keeps the op's order, TF2 lists scores, boxes, count, classes. Matching the model outputs
against the op's outputs tells classes from scores with certainty, where shapes alone cannot (both are
``[1, K]``) and a guess from values fails on frames where every class id is 0 or every score is a round number.

Pure and total: a flatbuffer that cannot be read gives ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import tflite

POSTPROCESS_OP: Final = "TFLite_Detection_PostProcess"
POSTPROCESS_ROLES: Final = ("boxes", "classes", "scores", "count")
"""The op's outputs, in the op's own order."""


@dataclass(frozen=True, slots=True)
class PostProcessOutputs:
    """Roles of the model outputs produced by a ``TFLite_Detection_PostProcess`` op.

    Attributes:
        roles: For each model output (in the model's output order), its role (``boxes``, ``classes``, ``scores``,
            ``count``) or ``""`` when that output does not come from the op.
        order: ``"tf1"`` when the outputs are in the op's order (boxes, classes, scores, count), ``"tf2"`` for
            scores, boxes, count, classes, else ``"other"``.
    """

    roles: tuple[str, ...]
    order: str

    def index_of(self, role: str) -> int | None:
        """Position among the model outputs of the output with ``role``, or None."""
        return self.roles.index(role) if role in self.roles else None


def find_postprocess_outputs(model: bytes) -> PostProcessOutputs | None:
    """Find the ``TFLite_Detection_PostProcess`` op of the first subgraph and map the model outputs to its roles.

    Args:
        model: The whole .tflite file.

    Returns:
        The roles, or None when there is no such op, none of its outputs is a model output, or the file cannot
        be read.
    """
    if len(model) < 8 or model[4:8] != b"TFL3":
        return None
    try:
        root = tflite.Model.GetRootAs(model, 0)
        if root.SubgraphsLength() < 1:
            return None
        graph = root.Subgraphs(0)
        custom = {i for i in range(root.OperatorCodesLength())
                  if (root.OperatorCodes(i).CustomCode() or b"") == POSTPROCESS_OP.encode()}
        if not custom:
            return None
        op_outputs: list[int] | None = None
        for i in range(graph.OperatorsLength()):
            op = graph.Operators(i)
            if op.OpcodeIndex() in custom:
                op_outputs = [int(op.Outputs(j)) for j in range(op.OutputsLength())]
                break
        if not op_outputs:
            return None
        role_of = {tensor: POSTPROCESS_ROLES[j] for j, tensor in enumerate(op_outputs[: len(POSTPROCESS_ROLES)])}
        roles = tuple(role_of.get(int(graph.Outputs(i)), "") for i in range(graph.OutputsLength()))
    except Exception:  # noqa: BLE001 - the flatbuffer library raises anything on junk offsets
        return None
    if not any(roles):
        return None
    return PostProcessOutputs(roles=roles, order=_order(roles))


def _order(roles: tuple[str, ...]) -> str:
    if roles == POSTPROCESS_ROLES:
        return "tf1"
    if roles == ("scores", "boxes", "count", "classes"):
        return "tf2"
    return "other"
