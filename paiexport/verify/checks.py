"""The checks every ONNX file gets, written once.

`validate_file` (a run's files) and `paiexport validate` (any file) both open a file with
`open_checked`, decide with `is_quantized` whether it is lossy int8 (judged by its accuracy
drop, not by output parity) and measure its weights' zeros with `stored_zeros`, so one file
never gets two answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from paiexport.errors import UserError, first_line
from paiexport.export.transforms import FLOAT_TYPES

# Ops that compute in, or store, quantized integers: a file with any of them is lossy.
QUANTIZED_OPS = frozenset(
    {
        "QuantizeLinear",
        "DequantizeLinear",
        "DynamicQuantizeLinear",
        "MatMulInteger",
        "ConvInteger",
        "MatMulIntegerToFloat",
        "DynamicQuantizeMatMul",
        "QGemm",
        "QAttention",
    }
)


def is_quantized(model: onnx.ModelProto) -> bool:
    """Whether the graph quantizes: any `QUANTIZED_OPS` or `QLinear*` node (QDQ or QOperator)."""
    return any(n.op_type in QUANTIZED_OPS or n.op_type.startswith("QLinear") for n in model.graph.node)


@dataclass(frozen=True)
class StoredZeros:
    """Exactly-zero entries of one initializer as stored (a sparse one counted densified)."""

    zeros: int
    size: int
    ndim: int
    is_float: bool

    @property
    def sparsity(self) -> float:
        return self.zeros / max(self.size, 1)


def _read(tensor: onnx.TensorProto, source: str) -> np.ndarray:
    try:
        return onnx.numpy_helper.to_array(tensor)
    except Exception as exc:  # e.g. raw data shorter than its dims
        raise UserError(f"{source}: initializer {tensor.name!r} unreadable ({type(exc).__name__})") from None


def _sparse_zeros(sparse: onnx.SparseTensorProto) -> StoredZeros:
    """Counted on the densified tensor (COO indices: flat positions or one row of coordinates
    per value; a position given twice holds its last value, as when densified)."""
    values = onnx.numpy_helper.to_array(sparse.values)
    indices = onnx.numpy_helper.to_array(sparse.indices)
    dims = tuple(sparse.dims)
    flat = indices if indices.ndim == 1 else np.ravel_multi_index(indices.T, dims)
    nonzero = np.zeros(int(prod(dims)), dtype=bool)
    nonzero[flat] = values != 0
    size = nonzero.size
    return StoredZeros(size - int(nonzero.sum()), size, len(dims), sparse.values.data_type in FLOAT_TYPES)


def stored_zeros(model: onnx.ModelProto, source: str = "model") -> dict[str, StoredZeros]:
    """Zeros and size of every initializer, dense or sparse, by name (the one way files' sparsity
    is measured). Sparse initializers must have been checked (`inspect.load_model`) or be ours."""
    found: dict[str, StoredZeros] = {}
    for tensor in model.graph.initializer:
        values = _read(tensor, source)
        zeros = values.size - int(np.count_nonzero(values))
        found[tensor.name] = StoredZeros(zeros, values.size, values.ndim, tensor.data_type in FLOAT_TYPES)
    for sparse in model.graph.sparse_initializer:
        found[sparse.values.name] = _sparse_zeros(sparse)
    return found


def make_session(path: Path, threads: int = 1) -> ort.InferenceSession:
    """A CPU session on `threads` threads, sequential, quiet."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@dataclass
class Opened:
    """`onnx.checker` and an onnxruntime session of one file: each failure as one line."""

    checker_error: str | None
    session: ort.InferenceSession | None
    load_error: str | None

    @property
    def checker(self) -> bool:
        return self.checker_error is None


def open_checked(path: Path) -> Opened:
    """Run `onnx.checker` on the file, then open it in onnxruntime (tried even when the checker fails)."""
    checker_error = session = load_error = None
    try:
        onnx.checker.check_model(str(path))
    except Exception as exc:  # a verdict on the file, not a crash
        checker_error = first_line(exc)
    try:
        session = make_session(path)
    except Exception as exc:
        load_error = first_line(exc)
    return Opened(checker_error, session, load_error)
