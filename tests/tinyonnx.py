"""Tiny hand-built ONNX files for the verify and bench tests (import from here, not conftest)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

FEATURES, CLASSES = 40, 4  # the synthetic dataset: inputs (1, 40), 4 classes


def save_graph(path: Path, nodes, inputs, outputs, inits=(), sparse=(), meta=None) -> Path:
    """One opset-18 graph saved at `path`; `meta`: metadata_props."""
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits), sparse_initializer=list(sparse))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    if meta:
        helper.set_model_props(model, meta)
    onnx.save(model, str(path))
    return path


def tensor(name: str, dims: list, elem: int = TensorProto.FLOAT) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, dims)


def linear_file(path: Path, w: np.ndarray, batch: int | str = "n", meta=None) -> Path:
    """logits = flatten(input) @ W, input (batch, 1, 40) like the synthetic data; W is `w` (40, 4)."""
    nodes = [
        helper.make_node("Flatten", ["input"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "W"], ["logits"]),
    ]
    return save_graph(
        path,
        nodes,
        [tensor("input", [batch, 1, FEATURES])],
        [tensor("logits", [batch, CLASSES])],
        [numpy_helper.from_array(w.astype(np.float32), "W")],
        meta=meta,
    )


def qdq_linear_file(path: Path, wq: np.ndarray, scale: float) -> Path:
    """The same graph with W stored as int8 behind a DequantizeLinear: a quantized (lossy) file."""
    nodes = [
        helper.make_node("Flatten", ["input"], ["flat"], axis=1),
        helper.make_node("DequantizeLinear", ["Wq", "scale", "zero"], ["W"]),
        helper.make_node("MatMul", ["flat", "W"], ["logits"]),
    ]
    inits = [
        numpy_helper.from_array(wq.astype(np.int8), "Wq"),
        numpy_helper.from_array(np.array(scale, np.float32), "scale"),
        numpy_helper.from_array(np.array(0, np.int8), "zero"),
    ]
    return save_graph(
        path, nodes, [tensor("input", ["n", 1, FEATURES])], [tensor("logits", ["n", CLASSES])], inits
    )


def separating_weight() -> np.ndarray:
    """Least squares on the synthetic training split: 100% test accuracy (the data is separable)."""
    from paiexport.data import DataConfig, load_dataset

    train = load_dataset(DataConfig(name="synthetic"), seed=0).train
    x = train.x.numpy().reshape(len(train), FEATURES)
    onehot = np.eye(CLASSES)[train.y.numpy()]
    return np.linalg.lstsq(x, onehot, rcond=None)[0].astype(np.float32)
