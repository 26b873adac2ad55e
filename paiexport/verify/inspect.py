"""`paiexport inspect`: what is inside any ONNX file (ours or not).

Per initializer: shape, dtype, sparsity, storage (dense/sparse) and bytes; op counts;
estimated FLOPs per sample of the weight-bearing ops (Conv, Gemm, MatMul and their int8
forms), dense and effective (skipping zero weights); metadata_props.
"""

from __future__ import annotations

from collections import Counter
from math import prod
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import ModelProto, numpy_helper

from paiexport.errors import UserError
from paiexport.export.transforms import array_sparsity
from paiexport.verify.inputs import MEMORY_FRACTION, available_memory

# op type -> position of the weight among the node's inputs
WEIGHT_INPUT = {
    "Conv": 1,
    "ConvInteger": 1,
    "QLinearConv": 3,
    "Gemm": 1,
    "MatMul": 1,
    "MatMulInteger": 1,
    "QLinearMatMul": 3,
}
CONV_OPS = {"Conv", "ConvInteger", "QLinearConv"}


def load_model(path: Path) -> ModelProto:
    """The parsed file, refused (one line naming it) when empty, not ONNX or with broken sparse tensors."""
    if not path.is_file():
        raise UserError(f"ONNX file not found: {path}")
    if path.stat().st_size == 0:
        raise UserError(f"{path}: empty file, not an ONNX model")
    try:
        model = onnx.load(str(path))
    except Exception as exc:
        raise UserError(f"{path}: not a readable ONNX file ({type(exc).__name__})") from None
    # Protobuf parses many byte strings into an empty message: an ONNX model has both.
    if model.ir_version < 1 or not model.HasField("graph"):
        raise UserError(f"{path}: not an ONNX model (no IR version or no graph)")
    for sparse in model.graph.sparse_initializer:
        _check_sparse(sparse, str(path))
    return model


def _check_sparse(sparse: onnx.SparseTensorProto, source: str) -> None:
    """Bounds of a COO sparse initializer, so densifying it can neither crash nor exhaust memory."""
    name = sparse.values.name or "?"
    bad = f"{source}: sparse initializer {name!r}"
    dims = list(sparse.dims)
    if not dims or any(d < 0 for d in dims):
        raise UserError(f"{bad} has invalid dims {dims[:8]}")
    try:
        values, indices = numpy_helper.to_array(sparse.values), numpy_helper.to_array(sparse.indices)
    except Exception as exc:
        raise UserError(f"{bad}: values or indices unreadable ({type(exc).__name__})") from None
    itemsize = values.dtype.itemsize
    limit = int(available_memory() * MEMORY_FRACTION)
    if prod(dims) * itemsize > limit:
        raise UserError(
            f"{bad} declares dims {dims[:8]}: {prod(dims) * itemsize:,} bytes dense, over {limit:,}"
        )
    nnz = values.shape[0] if values.ndim == 1 else -1
    if nnz < 0 or indices.dtype.kind not in "iu":
        raise UserError(f"{bad}: values must be 1-D and indices integers")
    if indices.shape not in ((nnz,), (nnz, len(dims))):
        raise UserError(f"{bad}: {nnz} values but indices of shape {list(indices.shape)}")
    high = np.array([prod(dims)]) if indices.ndim == 1 else np.array(dims)
    if nnz and ((indices < 0).any() or (indices >= high).any()):
        raise UserError(f"{bad}: index out of range for dims {dims[:8]}")


def weights(model: ModelProto, source: str = "model") -> dict[str, tuple[np.ndarray, str]]:
    """name -> (values, storage) for dense and sparse (checked by `load_model`) initializers."""
    found = {}
    for t in model.graph.initializer:
        try:
            found[t.name] = (numpy_helper.to_array(t), "dense")
        except Exception as exc:  # e.g. raw data shorter than its dims
            raise UserError(f"{source}: initializer {t.name!r} unreadable ({type(exc).__name__})") from None
    for sparse in model.graph.sparse_initializer:
        values = numpy_helper.to_array(sparse.values)
        indices = numpy_helper.to_array(sparse.indices)
        dense = np.zeros(int(prod(sparse.dims)), dtype=values.dtype)
        # COO indices: 1-D positions in the flattened tensor, or one row of coordinates per value
        flat = indices if indices.ndim == 1 else np.ravel_multi_index(indices.T, tuple(sparse.dims))
        dense[flat] = values
        found[sparse.values.name] = (dense.reshape(tuple(sparse.dims)), "sparse")
    return found


def _stored_bytes(model: ModelProto) -> dict[str, int]:
    sizes = {t.name: t.ByteSize() for t in model.graph.initializer}
    sizes.update({s.values.name: s.ByteSize() for s in model.graph.sparse_initializer})
    return sizes


def _shapes_per_sample(
    model: ModelProto, values: dict[str, tuple[np.ndarray, str]]
) -> dict[str, tuple[int, ...]]:
    """Inferred shapes with every symbolic input dimension set to 1 (sparse weights densified)."""
    work = ModelProto()
    work.CopyFrom(model)
    del work.graph.sparse_initializer[:]
    work.graph.initializer.extend(
        numpy_helper.from_array(w, name) for name, (w, storage) in values.items() if storage == "sparse"
    )
    del work.graph.value_info[:]
    for graph_input in work.graph.input:
        for dim in graph_input.type.tensor_type.shape.dim:
            if not dim.HasField("dim_value"):
                dim.dim_value = 1
    try:
        inferred = onnx.shape_inference.infer_shapes(work)
    except Exception:
        return {}
    shapes = {}
    for info in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]:
        dims = info.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") for d in dims):
            shapes[info.name] = tuple(d.dim_value for d in dims)
    return shapes


def flops(model: ModelProto) -> dict[str, Any]:
    """Estimated FLOPs per sample (2 per multiply-add) of the weight-bearing nodes."""
    values = weights(model)
    shapes = _shapes_per_sample(model, values)
    dense = effective = 0
    unknown: list[str] = []
    for node in model.graph.node:
        pos = WEIGHT_INPUT.get(node.op_type)
        if pos is None or len(node.input) <= pos or node.input[pos] not in values:
            continue
        w = values[node.input[pos]][0]
        density = 1.0 - array_sparsity(w)
        if node.op_type in CONV_OPS:
            out = shapes.get(node.output[0])
            macs = prod(out[1:]) * prod(w.shape[1:]) if out else None
        else:
            a = shapes.get(node.input[0])
            macs = w.size * (prod(a[:-1]) if a else 1)
        if macs is None:
            unknown.append(node.name or node.op_type)
            continue
        dense += 2 * macs
        effective += round(2 * macs * density)
    return {"dense": int(dense), "effective": int(effective), "unknown_nodes": unknown}


def graph_values(values: Any, inits: set[str]) -> list[dict[str, Any]]:
    """Name, element type and shape (symbolic dims by name, unknown as "?") of graph inputs
    or outputs; initializers listed as inputs (older exporters) are weights, not inputs."""
    found = []
    for v in values:
        if v.name in inits:
            continue
        t = v.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in t.shape.dim]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name if t.elem_type else "?"
        found.append({"name": v.name, "dtype": dtype, "shape": dims})
    return found


def inspect_model(path: Path) -> dict[str, Any]:
    model = load_model(path)
    stored = _stored_bytes(model)
    inits = {}
    for name, (w, storage) in weights(model, str(path)).items():
        inits[name] = {
            "shape": list(w.shape),
            "dtype": str(w.dtype),
            "sparsity": array_sparsity(w),
            "storage": storage,
            "bytes": stored.get(name, 0),
        }
    return {
        "file": str(path),
        "bytes": path.stat().st_size,
        "opset": {o.domain or "ai.onnx": o.version for o in model.opset_import},
        "inputs": graph_values(model.graph.input, set(inits)),
        "outputs": graph_values(model.graph.output, set()),
        "initializers": inits,
        "ops": dict(Counter(n.op_type for n in model.graph.node).most_common()),
        "flops_per_sample": flops(model),
        "metadata": {p.key: p.value for p in model.metadata_props},
    }


def render(found: dict[str, Any]) -> list[Any]:
    """Rich tables for the terminal."""
    from rich.table import Table

    opsets = ", ".join(f"{domain} {version}" for domain, version in found["opset"].items())
    inits = Table(title=f"{found['file']} ({found['bytes'] / 1024:.1f} KiB, opset {opsets})")
    for header in ("initializer", "shape", "dtype", "sparsity", "storage", "bytes"):
        inits.add_column(header, justify="left" if header == "initializer" else "right")
    for name, i in found["initializers"].items():
        shape = "×".join(map(str, i["shape"])) or "scalar"
        inits.add_row(name, shape, i["dtype"], f"{i['sparsity']:.2%}", i["storage"], str(i["bytes"]))
    f = found["flops_per_sample"]
    ratio = f"{f['dense'] / f['effective']:.2f}×" if f["effective"] else "-"

    def value(v: dict[str, Any]) -> str:
        return f"{v['name']} {v['dtype']}[{', '.join(map(str, v['shape']))}]"

    lines = [
        inits,
        "inputs: " + (", ".join(map(value, found["inputs"])) or "none"),
        "outputs: " + (", ".join(map(value, found["outputs"])) or "none"),
        "ops: " + ", ".join(f"{op} {n}" for op, n in found["ops"].items()),
        f"FLOPs per sample (Conv/Gemm/MatMul): dense {f['dense']:,}, effective {f['effective']:,} "
        f"(nonzero weights only; {ratio} fewer)"
        + (f"; unknown shapes: {', '.join(f['unknown_nodes'])}" if f["unknown_nodes"] else ""),
        "metadata: " + (", ".join(f"{k}={v}" for k, v in found["metadata"].items()) or "none"),
    ]
    return lines
