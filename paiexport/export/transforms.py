"""Pure ONNX transforms: `ModelProto -> ModelProto`, input never mutated, output checked."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import ModelProto, TensorProto, helper, numpy_helper

FLOAT_TYPES = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.BFLOAT16}


def array_sparsity(values: np.ndarray) -> float:
    """Fraction of exactly-zero entries (0 for an empty array)."""
    return float(1.0 - np.count_nonzero(values) / max(values.size, 1))


def to_sparse_initializers(model: ModelProto, threshold: float) -> ModelProto:
    """Move float initializers at least `threshold` sparse into `graph.sparse_initializer`.

    Indices are 1-D int64 positions into the flattened tensor (the COO layout that
    onnxruntime reads). Do this last: onnx-ir/onnxscript round trips drop sparse
    initializers, and `onnx.checker` with `full_check=True` rejects them.
    """
    out = ModelProto()
    out.CopyFrom(model)
    kept: list[TensorProto] = []
    for tensor in out.graph.initializer:
        if tensor.data_type not in FLOAT_TYPES or tensor.data_location == TensorProto.EXTERNAL:
            kept.append(tensor)
            continue
        values = numpy_helper.to_array(tensor)
        flat = values.reshape(-1)
        nonzero = np.flatnonzero(flat)
        if values.size == 0 or len(nonzero) == 0 or 1.0 - len(nonzero) / values.size < threshold:
            kept.append(tensor)  # all-zero tensors stay dense: onnxruntime rejects nnz == 0
            continue
        sparse_values = numpy_helper.from_array(flat[nonzero], name=tensor.name)
        indices = numpy_helper.from_array(nonzero.astype(np.int64), name=f"{tensor.name}_indices")
        out.graph.sparse_initializer.append(
            helper.make_sparse_tensor(sparse_values, indices, list(values.shape))
        )
    del out.graph.initializer[:]
    out.graph.initializer.extend(kept)
    onnx.checker.check_model(out)
    return out


def sparse_initializer_names(model: ModelProto) -> list[str]:
    return [s.values.name for s in model.graph.sparse_initializer]


def set_metadata(model: ModelProto, props: dict[str, str]) -> ModelProto:
    """Return a copy with `metadata_props` set (existing keys replaced)."""
    out = ModelProto()
    out.CopyFrom(model)
    existing = {p.key: p.value for p in out.metadata_props}
    existing.update(props)
    del out.metadata_props[:]
    for key in sorted(existing):
        entry = out.metadata_props.add()
        entry.key, entry.value = key, existing[key]
    onnx.checker.check_model(out)
    return out
