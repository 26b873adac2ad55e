"""Residual Adds before a LayerNormalization become Sum (`export.fuse_skip_layernorm: false`):
the same values, and onnxruntime no longer fuses them into com.microsoft.SkipLayerNormalization."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from paiexport.export.residual_sum import residual_sums

HIDDEN = 8


def graph(residual_op: str = "Add") -> onnx.ModelProto:
    """y = LayerNorm(x + skip); z = x + skip2 (an Add that feeds no LayerNormalization)."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.random(HIDDEN).astype(np.float32), "gamma"),
        numpy_helper.from_array(rng.random(HIDDEN).astype(np.float32), "beta"),
    ]
    nodes = [
        helper.make_node(residual_op, ["x", "skip"], ["s"], name="residual"),
        helper.make_node("LayerNormalization", ["s", "gamma", "beta"], ["y"], axis=-1, epsilon=1e-5),
        helper.make_node("Add", ["x", "skip2"], ["z"], name="other"),
    ]
    spec = [1, 4, HIDDEN]
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, spec) for n in ("x", "skip", "skip2")]
    outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, spec) for n in ("y", "z")]
    model = helper.make_model(
        helper.make_graph(nodes, "g", inputs, outputs, inits), opset_imports=[helper.make_opsetid("", 18)]
    )
    model.ir_version = 9
    return model


def optimized_ops(model: onnx.ModelProto, tmp_path) -> list[str]:
    """The op types onnxruntime's default CPU session runs for `model`."""
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    options.log_severity_level = 3
    ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return [n.op_type for n in onnx.load(str(tmp_path / "optimized.onnx")).graph.node]


def run(model: onnx.ModelProto, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, feed)


def test_only_the_add_that_feeds_a_layernorm_becomes_a_sum_and_the_input_is_unchanged():
    model = graph()
    before = model.SerializeToString()
    out, rewritten = residual_sums(model)
    assert rewritten == 1
    assert {n.name: n.op_type for n in out.graph.node} == {
        "residual": "Sum",
        "": "LayerNormalization",
        "other": "Add",
    }
    assert model.SerializeToString() == before


def test_the_outputs_are_bit_identical():
    rng = np.random.default_rng(1)
    feed = {n: rng.standard_normal((1, 4, HIDDEN)).astype(np.float32) for n in ("x", "skip", "skip2")}
    for a, b in zip(run(graph(), feed), run(residual_sums(graph())[0], feed), strict=True):
        np.testing.assert_array_equal(a, b)


def test_onnxruntime_fuses_the_add_but_not_the_sum(tmp_path):
    assert "SkipLayerNormalization" in optimized_ops(graph(), tmp_path)
    ops = optimized_ops(residual_sums(graph())[0], tmp_path)
    assert "SkipLayerNormalization" not in ops and {"Sum", "LayerNormalization"} <= set(ops)


@pytest.mark.parametrize("op", ["Sum", "Mul"])
def test_a_graph_without_a_residual_add_is_left_as_it_is(op):
    out, rewritten = residual_sums(graph(op))
    assert rewritten == 0 and [n.op_type for n in out.graph.node] == [op, "LayerNormalization", "Add"]
