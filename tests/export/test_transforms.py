"""Pure ONNX transforms: sparse initializers (layout, parity, threshold) and metadata round trip."""

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from paiexport.export.transforms import set_metadata, sparse_initializer_names, to_sparse_initializers


def run(model_proto: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model_proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def tiny_graph(weight: np.ndarray) -> onnx.ModelProto:
    init = numpy_helper.from_array(weight, name="W")
    node = helper.make_node("MatMul", ["x", "W"], ["y"])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", weight.shape[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", weight.shape[1]])],
        [init],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def test_sparse_initializers_layout_and_parity():
    w = np.zeros((4, 5), dtype=np.float32)
    w[0, 1], w[2, 3], w[3, 4] = 1.5, -2.0, 0.25  # 85% sparse
    dense = tiny_graph(w)
    sparse = to_sparse_initializers(dense, threshold=0.7)
    assert len(dense.graph.initializer) == 1, "input must not be mutated"
    assert sparse_initializer_names(sparse) == ["W"] and len(sparse.graph.initializer) == 0
    st = sparse.graph.sparse_initializer[0]
    indices = numpy_helper.to_array(st.indices)
    assert indices.dtype == np.int64 and indices.ndim == 1
    assert indices.tolist() == [1, 13, 19]
    assert numpy_helper.to_array(st.values).tolist() == [1.5, -2.0, 0.25]
    assert list(st.dims) == [4, 5]
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    np.testing.assert_array_equal(run(sparse, x), run(dense, x))


def test_below_threshold_and_all_zero_stay_dense():
    w = np.ones((4, 5), dtype=np.float32)
    w[0] = 0  # 20% sparse
    assert to_sparse_initializers(tiny_graph(w), 0.7).graph.sparse_initializer == []
    zero = to_sparse_initializers(tiny_graph(np.zeros((4, 5), np.float32)), 0.7)
    assert zero.graph.sparse_initializer == [] and len(zero.graph.initializer) == 1


def test_metadata_roundtrip():
    model = set_metadata(tiny_graph(np.ones((2, 2), np.float32)), {"b": "2", "a": "1"})
    again = set_metadata(model, {"a": "3"})
    assert {p.key: p.value for p in again.metadata_props} == {"a": "3", "b": "2"}
