"""`paiexport inspect`: weights (dense and sparse storage), FLOPs per sample by hand, graph values."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from paiexport.verify.inspect import flops, graph_values, inspect_model, weights


def conv_then_matmul() -> onnx.ModelProto:
    """Conv 2->3 channels, 3x3, padding 1, on 5x5; flatten; MatMul 75 -> 4. Half the conv weights
    and a quarter of the MatMul weights are zero."""
    conv = np.ones((3, 2, 3, 3), np.float32)
    conv.reshape(-1)[:27] = 0.0
    mat = np.ones((75, 4), np.float32)
    mat.reshape(-1)[:75] = 0.0
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["input", "c"], ["h"], pads=[1, 1, 1, 1]),
            helper.make_node("Flatten", ["h"], ["f"]),
            helper.make_node("MatMul", ["f", "m"], ["logits"]),
        ],
        "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 2, 5, 5])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", 4])],
        [numpy_helper.from_array(conv, "c"), numpy_helper.from_array(mat, "m")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    helper.set_model_props(model, {"paiexport.variant": "dense"})
    return model


def test_flops_per_sample_by_hand():
    # Conv: 3 x 5 x 5 outputs x 2 x 3 x 3 weights each = 1350 MACs; MatMul: 75 x 4 = 300 MACs
    assert flops(conv_then_matmul()) == {
        "dense": 2 * (1350 + 300),
        "effective": 2 * (1350 // 2 + 300 * 3 // 4),
        "unknown_nodes": [],
    }


def test_sparse_initializers_are_densified_from_either_index_form():
    model = conv_then_matmul()
    flat = helper.make_sparse_tensor(
        numpy_helper.from_array(np.array([5.0, 6.0], np.float32), "s1"),
        numpy_helper.from_array(np.array([1, 4], np.int64), "s1_idx"),
        [2, 3],
    )
    coords = helper.make_sparse_tensor(
        numpy_helper.from_array(np.array([7.0], np.float32), "s2"),
        numpy_helper.from_array(np.array([[1, 2]], np.int64), "s2_idx"),
        [2, 3],
    )
    model.graph.sparse_initializer.extend([flat, coords])
    found = weights(model)
    assert found["s1"][1] == "sparse" and found["s1"][0].tolist() == [[0, 5, 0], [0, 6, 0]]
    assert found["s2"][0].tolist() == [[0, 0, 0], [0, 0, 7]]
    assert found["c"][1] == "dense" and found["c"][0].shape == (3, 2, 3, 3)


def test_graph_values_name_symbolic_dims_and_skip_weights_listed_as_inputs():
    model = conv_then_matmul()
    model.graph.input.append(helper.make_tensor_value_info("c", TensorProto.FLOAT, [3, 2, 3, 3]))
    assert graph_values(model.graph.input, {"c", "m"}) == [
        {"name": "input", "dtype": "float32", "shape": ["n", 2, 5, 5]}
    ]


def test_inspect_model_of_a_file(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(conv_then_matmul(), str(path))
    found = inspect_model(path)
    assert found["opset"] == {"ai.onnx": 18} and found["ops"] == {"Conv": 1, "Flatten": 1, "MatMul": 1}
    assert found["initializers"]["c"]["sparsity"] == 0.5 and found["initializers"]["m"]["sparsity"] == 0.25
    assert found["initializers"]["m"]["shape"] == [75, 4] and found["initializers"]["m"]["storage"] == "dense"
    assert found["outputs"] == [{"name": "logits", "dtype": "float32", "shape": ["n", 4]}]
    assert found["metadata"] == {"paiexport.variant": "dense"} and found["bytes"] == path.stat().st_size
