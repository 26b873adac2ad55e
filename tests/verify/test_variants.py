"""variants.py: every file of a run checked against one PyTorch model, one forward pass for all."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from onnx import helper, numpy_helper
from tinyonnx import save_graph, tensor
from torch import nn

import paiexport.verify.variants as variants
from paiexport.data import Split
from paiexport.export.torch_export import save_onnx, to_onnx
from paiexport.tasks import make_task
from paiexport.variant import Variant
from paiexport.verify.validate import Judging
from paiexport.verify.variants import validate_variants


@pytest.fixture
def model() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 3))
    with torch.no_grad():
        net[0].weight[0, :2] = 0.0  # two pruned weights
    return net


def float_file(tmp_path, model: nn.Module):
    path = tmp_path / "model.onnx"
    save_onnx(to_onnx(model, (4,), 18), path)
    return path


def int8_file(tmp_path, model: nn.Module):
    """The model's weight stored as int8 behind a DequantizeLinear (a QDQ file, whatever its name)."""
    w = model[0].weight.detach().numpy().T
    scale = float(np.abs(w).max() / 127)
    inits = [
        numpy_helper.from_array(np.round(w / scale).astype(np.int8), "wq"),
        numpy_helper.from_array(np.array(scale, np.float32), "scale"),
        numpy_helper.from_array(np.array(0, np.int8), "zero"),
        numpy_helper.from_array(model[0].bias.detach().numpy(), "bias"),
    ]
    nodes = [
        helper.make_node("DequantizeLinear", ["wq", "scale", "zero"], ["w"]),
        helper.make_node("MatMul", ["x", "w"], ["mm"]),
        helper.make_node("Add", ["mm", "bias"], ["y"]),
    ]
    return save_graph(tmp_path / "q.onnx", nodes, [tensor("x", ["n", 4])], [tensor("y", ["n", 3])], inits)


def predicted(model: nn.Module) -> Split:
    """Labels the model predicts: PyTorch scores 100%."""
    x = torch.randn(60, 4, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return Split(x, model(x).argmax(1))


def test_every_file_is_judged_by_its_graph_against_one_reference_pass(tmp_path, model, monkeypatch):
    calls = []
    real = variants.torch_outputs

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(variants, "torch_outputs", counted)
    files = {Variant.dense: float_file(tmp_path, model), Variant.int8: int8_file(tmp_path, model)}
    found = validate_variants(files, model, predicted(model), Judging(make_task(), 0.0, 0.5))
    assert list(found) == [Variant.dense, Variant.int8] and len(calls) == 1
    dense, int8 = found[Variant.dense], found[Variant.int8]
    assert (dense.variant, int8.variant) == (Variant.dense, Variant.int8)
    assert dense.parity_required and not int8.parity_required  # decided by the QDQ node, not the name
    assert dense.accuracy_torch == int8.accuracy_torch == 1.0
    assert dense.max_metric_drop == int8.max_metric_drop == 0.5
    assert dense.passed and dense.sparsity_mismatch == [] and int8.passed


def test_the_zeros_a_file_must_store_are_the_models(tmp_path, model):
    path = float_file(tmp_path, model)
    with torch.no_grad():
        model[0].weight[1, 0] = 0.0  # the model now has 3 zeros, the file stores 2
    found = validate_variants({Variant.sparse: path}, model, predicted(model), Judging(make_task(), 0.0, 1.0))
    assert found[Variant.sparse].sparsity_mismatch == ["0.weight"]
    assert "sparsity" in found[Variant.sparse].broken_checks
