"""Hand-built ONNX chains for benchmarks: valid, deterministic, computing relu(x W0) W1 ..."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

from paiexport.bench.synthetic import matmul_chain


def test_a_chain_computes_what_it_holds(tmp_path):
    path = matmul_chain(tmp_path / "c.onnx", layers=2, width=3)
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    assert [n.op_type for n in model.graph.node] == ["MatMul", "Relu", "MatMul", "Relu"]
    assert model.graph.output[0].name == "logits" and model.opset_import[0].version == 18
    w0, w1 = (numpy_helper.to_array(t) for t in model.graph.initializer)
    assert w0.shape == w1.shape == (3, 3)
    x = np.array([[1.0, -2.0, 0.5], [0.0, 1.0, 1.0]], np.float32)  # any batch size
    expected = np.maximum(np.maximum(x @ w0, 0) @ w1, 0)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"input": x})[0], expected, rtol=1e-5, atol=1e-6)


def test_the_same_chain_gives_the_same_bytes(tmp_path):
    a = matmul_chain(tmp_path / "a.onnx", 3, 8).read_bytes()
    assert a == matmul_chain(tmp_path / "b.onnx", 3, 8).read_bytes()
    assert a != matmul_chain(tmp_path / "c.onnx", 2, 8).read_bytes()
