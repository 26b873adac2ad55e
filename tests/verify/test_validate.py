"""validate.py: one exported file against the PyTorch model it came from (`run`'s validation)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from tinyonnx import save_graph, tensor
from torch import nn

from paiexport.data import Split
from paiexport.export.torch_export import save_onnx, to_onnx
from paiexport.tasks import make_task
from paiexport.tasks.classification import ClassificationConfig
from paiexport.verify.validate import (
    Judging,
    accuracy,
    float_zeros,
    make_session,
    onnx_weight_sparsity,
    run_outputs,
    run_session,
    validate_file,
)


class Recording:
    """A session that remembers the shape of every batch it was run on."""

    def __init__(self, session) -> None:
        self.session, self.shapes = session, []

    def get_inputs(self):
        return self.session.get_inputs()

    def get_outputs(self):
        return self.session.get_outputs()

    def run(self, outputs, feeds):
        self.shapes.extend(v.shape for v in feeds.values())
        return self.session.run(outputs, feeds)


def matmul_file(tmp_path, batch, elem=TensorProto.FLOAT):
    """y = cast(x, float) @ W for x of shape (batch, 3)."""
    w = np.arange(6, dtype=np.float32).reshape(3, 2)
    nodes = [
        helper.make_node("Cast", ["x"], ["xf"], to=TensorProto.FLOAT),
        helper.make_node("MatMul", ["xf", "W"], ["y"]),
    ]
    path = save_graph(
        tmp_path / "m.onnx",
        nodes,
        [tensor("x", [batch, 3], elem)],
        [tensor("y", [batch, 2])],
        [numpy_helper.from_array(w, "W")],
    )
    return path, w


def test_a_fixed_batch_gets_chunks_of_exactly_that_size_and_the_padding_rows_are_dropped(tmp_path):
    path, w = matmul_file(tmp_path, 4)
    x = np.arange(30, dtype=np.float32).reshape(10, 3) + 1
    session = Recording(make_session(path))
    logits = run_session(session, x, batch_size=512)
    assert session.shapes == [(4, 3), (4, 3), (4, 3)]  # 4 + 4 + 2 rows, the last chunk padded
    assert logits.shape == (10, 2)
    np.testing.assert_allclose(logits, x @ w)


def test_a_dynamic_batch_is_fed_batch_size_rows_at_a_time(tmp_path):
    path, w = matmul_file(tmp_path, "n")
    x = np.ones((10, 3), np.float32)
    session = Recording(make_session(path))
    logits = run_session(session, x, batch_size=4)
    assert session.shapes == [(4, 3), (4, 3), (2, 3)]
    np.testing.assert_allclose(logits, x @ w)


FLOAT_TYPES = [(TensorProto.FLOAT16, np.float16), (TensorProto.DOUBLE, np.float64)]


@pytest.mark.parametrize(("elem", "dtype"), FLOAT_TYPES)
def test_inputs_are_cast_to_the_files_float_type(tmp_path, elem, dtype):
    path, w = matmul_file(tmp_path, "n", elem)
    x = np.full((3, 3), 0.5, np.float32)
    seen = []

    class Typed(Recording):
        def run(self, outputs, feeds):
            seen.extend(v.dtype for v in feeds.values())
            return super().run(outputs, feeds)

    np.testing.assert_allclose(run_session(Typed(make_session(path)), x), x @ w)
    assert seen == [np.dtype(dtype)]


def test_accuracy_is_the_share_of_argmax_hits_and_zero_without_labels():
    logits = np.array([[2.0, 1.0], [0.0, 3.0], [5.0, -1.0]])
    assert accuracy(logits, np.array([0, 1, 1])) == pytest.approx(2 / 3)
    assert accuracy(np.zeros((0, 2)), np.array([], dtype=np.int64)) == 0.0


def exported(tmp_path, model: nn.Module, name: str = "m.onnx"):
    path = tmp_path / name
    save_onnx(to_onnx(model, (4,), 18), path)
    return path


def test_sparsity_stored_differently_from_the_masks_is_broken(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3))
    with torch.no_grad():
        model[0].weight[0, :2] = 0.0  # two pruned weights
    path = exported(tmp_path, model)
    x = torch.randn(60, 4)
    test = Split(x, model(x).argmax(1))  # labels the model predicts: accuracy 100%
    right = validate_file(path, "dense", model, test, zeros={"0.weight": (2, 12)})
    assert right.passed and right.sparsity_mismatch == []
    wrong = validate_file(path, "dense", model, test, zeros={"0.weight": (3, 12)})
    assert wrong.broken_checks == ["sparsity"] and wrong.sparsity_mismatch == ["0.weight"]
    # a tensor of another size (a compact graph's) is not compared
    other = validate_file(path, "compact", model, test, zeros={"0.weight": (3, 16)})
    assert other.sparsity_mismatch == []


def test_a_model_no_better_than_guessing_is_broken_by_the_chance_level(tmp_path):
    model = nn.Sequential(nn.Linear(4, 3))
    with torch.no_grad():
        model[0].weight.zero_()
        model[0].bias.zero_()
    path = exported(tmp_path, model)
    labels = torch.tensor([0] * 20 + [1] * 20 + [2] * 20)  # constant logits: argmax 0, a third right
    checked = validate_file(path, "dense", model, Split(torch.randn(60, 4), labels))
    assert checked.parity and checked.accuracy == pytest.approx(1 / 3) == checked.accuracy_torch
    assert checked.chance_level > 1 / 3 and checked.broken_checks == ["chance_level"]


def test_an_unreadable_file_is_reported_not_raised(tmp_path):
    model = nn.Sequential(nn.Linear(4, 3))
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    checked = validate_file(junk, "dense", model, Split(torch.randn(8, 4), torch.zeros(8, dtype=torch.long)))
    assert (checked.checker, checked.loads, checked.max_abs_diff) == (False, False, float("inf"))
    assert checked.error and checked.broken_checks == ["checker"]


def test_float_zeros_counts_dense_and_sparse_float_weights_only(tmp_path):
    dense = numpy_helper.from_array(np.array([[0, 1], [0, 4], [2, 0]], np.float32), "dense")
    ints = numpy_helper.from_array(np.zeros((3, 2), np.int8), "ints")
    values = numpy_helper.from_array(np.array([1.0, 0.0, 3.0], np.float32), "sparse")
    indices = numpy_helper.from_array(np.array([0, 2, 5], np.int64), "sparse_idx")
    sparse = helper.make_sparse_tensor(values, indices, [3, 2])
    nodes = [helper.make_node("MatMul", ["x", n], [f"y_{n}"]) for n in ("dense", "sparse")]
    nodes.append(helper.make_node("Cast", ["ints"], ["y_ints"], to=TensorProto.FLOAT))
    outputs = [tensor(f"y_{n}", ["n", 2]) for n in ("dense", "sparse")] + [tensor("y_ints", [3, 2])]
    path = save_graph(tmp_path / "z.onnx", nodes, [tensor("x", ["n", 3])], outputs, [dense, ints], [sparse])
    names = ["dense", "sparse", "ints"]
    # the sparse one densified: 6 entries, 3 of them stored, one a stored zero: 4 zeros
    assert float_zeros(onnx.load(str(path)), names) == {"dense": (3, 6), "sparse": (4, 6)}
    assert onnx_weight_sparsity(path, ["dense"]) == {"dense": pytest.approx(3 / 6)}


class TwoOutputs(nn.Module):
    """(features, logits) from separate layers: one can change without the other."""

    def __init__(self) -> None:
        super().__init__()
        self.features, self.logits = nn.Linear(4, 5), nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.features(x), self.logits(x)


def test_parity_holds_on_every_output_and_the_task_reads_the_one_it_names(tmp_path):
    torch.manual_seed(0)
    model = TwoOutputs().eval()
    path = exported(tmp_path, model)
    assert [o.name for o in onnx.load(str(path)).graph.output] == ["output_0", "output_1"]
    x = torch.randn(60, 4)
    with torch.no_grad():
        test = Split(x, model(x)[1].argmax(1))  # the second output is the logits: accuracy 100%
    second = Judging(make_task(ClassificationConfig(output="1")), 0.3)
    checked = validate_file(path, "dense", model, test, judging=second)
    assert checked.passed and checked.parity and checked.accuracy == checked.accuracy_torch == 1.0
    first = validate_file(path, "dense", model, test, judging=Judging(make_task(), 0.3))
    assert first.accuracy < 0.9  # the features' argmax, not the logits'
    with torch.no_grad():
        model.features.weight.add_(1.0)  # PyTorch's first output moves, the file's does not
    moved = validate_file(path, "dense", model, test, judging=second)
    assert moved.accuracy == moved.accuracy_torch == 1.0  # the output the task reads still agrees
    assert not moved.parity and moved.max_abs_diff > 0.5 and "parity" in moved.broken_checks


def test_several_inputs_are_fed_by_name_and_every_output_returned(tmp_path):
    nodes = [helper.make_node("Add", ["a", "b"], ["sum"]), helper.make_node("Sub", ["a", "b"], ["diff"])]
    path = save_graph(
        tmp_path / "ab.onnx",
        nodes,
        [tensor("a", ["n", 2]), tensor("b", ["n", 2])],
        [tensor("sum", ["n", 2]), tensor("diff", ["n", 2])],
    )
    a, b = np.ones((5, 2), np.float32), np.arange(10, dtype=np.float32).reshape(5, 2)
    found = run_outputs(make_session(path), {"b": b, "a": a}, batch_size=2)
    assert list(found) == ["sum", "diff"]
    np.testing.assert_allclose(found["sum"], a + b)
    np.testing.assert_allclose(found["diff"], a - b)
    np.testing.assert_allclose(run_outputs(make_session(path), (a, b))["diff"], a - b)  # a tuple: by order
