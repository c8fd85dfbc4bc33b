"""A structural check of a TFLite flatbuffer before any runtime sees it.

tflite-runtime 2.14 (the fallback interpreter where ai-edge-litert has no wheel) builds its interpreter from the
bytes without verifying them: a model file cut short (a copy interrupted, a download that stopped) makes it read
past the end of the buffer and the whole module process dies of a segmentation fault. This walks every table,
vector and string of the model (schema.fbs) with bounds checks, and checks every index the interpreter follows
(tensor -> buffer, operator -> operator code and tensors, subgraph inputs/outputs, signatures), so such a file is
refused with a message instead. It reads offsets and counts only, never the weights themselves.
"""

from __future__ import annotations

import struct
from typing import Final

from module.mlmodel.tflite_metadata import _Table as Table  # the bounds-checked flatbuffer table reader

_MAX_ITEMS: Final = 10_000_000  # no real model has more tensors/operators; a corrupt count is refused early

# Field slots, in the order of the fields in tensorflow/lite/schema/schema.fbs.
_MODEL_OPCODES, _MODEL_SUBGRAPHS, _MODEL_DESCRIPTION, _MODEL_BUFFERS, _MODEL_METADATA_BUFFER, _MODEL_METADATA, \
    _MODEL_SIGNATURES = 1, 2, 3, 4, 5, 6, 7
_OPCODE_CUSTOM = 1
_SUBGRAPH_TENSORS, _SUBGRAPH_INPUTS, _SUBGRAPH_OUTPUTS, _SUBGRAPH_OPERATORS, _SUBGRAPH_NAME = 0, 1, 2, 3, 4
_TENSOR_SHAPE, _TENSOR_BUFFER, _TENSOR_NAME, _TENSOR_QUANTIZATION, _TENSOR_SHAPE_SIGNATURE = 0, 2, 3, 4, 7
_QUANT_FLOAT_VECTORS, _QUANT_ZERO_POINT = (0, 1, 2), 3
_OP_OPCODE, _OP_INPUTS, _OP_OUTPUTS, _OP_OPTIONS, _OP_CUSTOM_OPTIONS, _OP_INTERMEDIATES = 0, 1, 2, 4, 5, 8
_BUFFER_DATA, _BUFFER_OFFSET, _BUFFER_SIZE = 0, 1, 2
_SIGNATURE_INPUTS, _SIGNATURE_OUTPUTS, _SIGNATURE_KEY, _SIGNATURE_SUBGRAPH = 0, 1, 2, 4
_TENSORMAP_NAME, _TENSORMAP_INDEX = 0, 1


def check_model_structure(data: bytes) -> None:
    """Raise ValueError (saying what is wrong) unless ``data`` is a structurally sound TFLite flatbuffer."""
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ValueError("not a TFLite model (no TFL3 identifier)")
    try:
        _check_model(data)
    except (struct.error, IndexError, OverflowError, RecursionError) as exc:
        raise ValueError(f"the flatbuffer is corrupt: {exc}") from None


def _table(buf: bytes, table: Table | None) -> Table | None:
    """``table``, after checking that its inline fields (the size its vtable declares) lie inside ``buf``."""
    if table is not None:
        vtable = table._vtable
        inline = struct.unpack_from("<H", buf, vtable + 2)[0] if vtable + 4 <= len(buf) else 0
        if table._pos < 0 or table._pos + inline > len(buf):
            raise ValueError(f"a table at offset {table._pos} reaches past the end of the {len(buf)}-byte file "
                             "(the file is truncated or corrupt)")
    return table


def _tables(buf: bytes, parent: Table, slot: int) -> list[Table]:
    found = parent.tables(slot)
    if len(found) > _MAX_ITEMS:
        raise ValueError(f"a vector claims {len(found)} entries")
    return [t for t in found if _table(buf, t) is not None]


def _indices(table: Table, slot: int, count: int, what: str, *, optional: bool = True) -> None:
    values = table.numbers(slot, "i") or ()
    low = -1 if optional else 0
    for value in values:
        if not low <= value < count:
            raise ValueError(f"{what} refers to tensor {value}, but the subgraph has {count} tensors")


def _check_model(buf: bytes) -> None:
    root = _table(buf, Table(buf, struct.unpack_from("<I", buf, 0)[0]))
    assert root is not None
    opcodes = _tables(buf, root, _MODEL_OPCODES)
    for code in opcodes:
        code.string(_OPCODE_CUSTOM)
    buffers = _tables(buf, root, _MODEL_BUFFERS)
    for index, buffer in enumerate(buffers):
        buffer.bytes(_BUFFER_DATA)
        offset, size = buffer.scalar(_BUFFER_OFFSET, "<Q"), buffer.scalar(_BUFFER_SIZE, "<Q")
        if offset > 1 and offset + size > len(buf):
            raise ValueError(f"buffer {index} lies at bytes {offset}..{offset + size}, past the end of the "
                             f"{len(buf)}-byte file (the file is truncated)")
    root.string(_MODEL_DESCRIPTION)
    for named in root.numbers(_MODEL_METADATA_BUFFER, "i") or ():
        if not 0 <= named < len(buffers):
            raise ValueError(f"metadata_buffer names buffer {named}, but the model has {len(buffers)}")
    for entry in _tables(buf, root, _MODEL_METADATA):
        entry.string(0)
        if not 0 <= entry.scalar(1, "<I") < len(buffers):
            raise ValueError("a metadata entry names a buffer that does not exist")
    subgraphs = _tables(buf, root, _MODEL_SUBGRAPHS)
    if not subgraphs:
        raise ValueError("the model has no subgraph")
    tensor_counts = [_check_subgraph(buf, i, g, len(opcodes), len(buffers)) for i, g in enumerate(subgraphs)]
    for signature in _tables(buf, root, _MODEL_SIGNATURES):
        signature.string(_SIGNATURE_KEY)
        graph = signature.scalar(_SIGNATURE_SUBGRAPH, "<I")
        if not 0 <= graph < len(subgraphs):
            raise ValueError(f"a signature names subgraph {graph}, but the model has {len(subgraphs)}")
        for slot in (_SIGNATURE_INPUTS, _SIGNATURE_OUTPUTS):
            for mapping in _tables(buf, signature, slot):
                mapping.string(_TENSORMAP_NAME)
                if not 0 <= mapping.scalar(_TENSORMAP_INDEX, "<I") < tensor_counts[graph]:
                    raise ValueError("a signature names a tensor that does not exist")


def _check_subgraph(buf: bytes, number: int, graph: Table, opcode_count: int, buffer_count: int) -> int:
    tensors = _tables(buf, graph, _SUBGRAPH_TENSORS)
    for index, tensor in enumerate(tensors):
        tensor.numbers(_TENSOR_SHAPE, "i")
        tensor.numbers(_TENSOR_SHAPE_SIGNATURE, "i")
        tensor.string(_TENSOR_NAME)
        if not 0 <= tensor.scalar(_TENSOR_BUFFER, "<I") < max(buffer_count, 1):
            raise ValueError(f"tensor {index} of subgraph {number} names a buffer that does not exist")
        quantization = _table(buf, tensor.table(_TENSOR_QUANTIZATION))
        if quantization is not None:
            for slot in _QUANT_FLOAT_VECTORS:
                quantization.numbers(slot, "f")
            quantization.numbers(_QUANT_ZERO_POINT, "q")
    count = len(tensors)
    _indices(graph, _SUBGRAPH_INPUTS, count, f"an input of subgraph {number}", optional=False)
    _indices(graph, _SUBGRAPH_OUTPUTS, count, f"an output of subgraph {number}", optional=False)
    graph.string(_SUBGRAPH_NAME)
    for index, op in enumerate(_tables(buf, graph, _SUBGRAPH_OPERATORS)):
        if not 0 <= op.scalar(_OP_OPCODE, "<I") < opcode_count:
            raise ValueError(f"operator {index} of subgraph {number} names an operator code that does not exist")
        what = f"operator {index} of subgraph {number}"
        _indices(op, _OP_INPUTS, count, what)
        _indices(op, _OP_OUTPUTS, count, what)
        _indices(op, _OP_INTERMEDIATES, count, what)
        _table(buf, op.table(_OP_OPTIONS))
        op.bytes(_OP_CUSTOM_OPTIONS)
    return count
