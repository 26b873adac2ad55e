"""The checks every ONNX file gets, decided alike by `run`'s validation and `paiexport validate`."""

from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn
from typer.testing import CliRunner

from paiexport.cli import app
from paiexport.data import DataConfig, load_dataset
from paiexport.export.torch_export import save_onnx, to_onnx
from paiexport.verify.checks import is_quantized
from paiexport.verify.file_checks import check_file
from paiexport.verify.validate import onnx_weight_sparsity, validate_file

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


# --- one validator core: `run`'s validation and `paiexport validate` decide alike ----------


@pytest.fixture(scope="module")
def float_and_qdq(tmp_path_factory):
    """A float Linear(40, 4) on the synthetic data and the same weights stored as int8 behind a
    DequantizeLinear (weight-only QDQ: no QuantizeLinear, no QLinear/Integer op)."""
    tmp = tmp_path_factory.mktemp("qdq")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(40, 4))
    with torch.no_grad():
        model[1].weight[0, :10] = 0.0
    float_path = tmp / "float.onnx"
    save_onnx(to_onnx(model, (1, 40), 18), float_path)
    w = model[1].weight.detach().numpy().T  # (40, 4)
    scale = float(np.abs(w).max() / 127)
    inits = [
        numpy_helper.from_array(np.round(w / scale).astype(np.int8), "wq"),
        numpy_helper.from_array(np.array(scale, np.float32), "scale"),
        numpy_helper.from_array(np.array(0, np.int8), "zero"),
        numpy_helper.from_array(model[1].bias.detach().numpy(), "bias"),
    ]
    nodes = [
        helper.make_node("Flatten", ["input"], ["flat"], axis=1),
        helper.make_node("DequantizeLinear", ["wq", "scale", "zero"], ["w"]),
        helper.make_node("MatMul", ["flat", "w"], ["mm"]),
        helper.make_node("Add", ["mm", "bias"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "qdq",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 1, 40])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", 4])],
        inits,
    )
    qdq_path = tmp / "qdq.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(qdq_path))
    test = load_dataset(DataConfig(name="synthetic"), seed=0).test
    return model, float_path, qdq_path, test


def test_a_weight_only_qdq_file_is_quantized_for_run_and_validate_alike(float_and_qdq):
    model, float_path, qdq_path, test = float_and_qdq
    assert is_quantized(onnx.load(str(qdq_path))) and not is_quantized(onnx.load(str(float_path)))
    # run's validation: decided from the file, whatever the variant is called
    assert validate_file(qdq_path, "dense", model, test).parity_required is False
    assert validate_file(float_path, "int8", model, test).parity_required is True
    # paiexport validate: a lossy file vs a float reference is judged by its drop, not parity
    lossy = check_file(qdq_path, "synthetic", float_path, 1.0, seed=0)
    assert "accuracy_drop" in [c.name for c in lossy.checks] and "parity" not in [
        c.name for c in lossy.checks
    ]
    exact = check_file(float_path, "synthetic", float_path, 1.0, seed=0)
    assert "parity" in [c.name for c in exact.checks]
    # and both measure the float weight's sparsity the same way (10 of 160 zero)
    name = next(t.name for t in onnx.load(str(float_path)).graph.initializer if t.dims == [4, 40])
    assert onnx_weight_sparsity(float_path, [name])[name] == exact.sparsity[name] == 10 / 160


def _tiny_file(tmp_path: Path) -> Path:
    weight = numpy_helper.from_array(np.ones((40, 4), np.float32), "W")
    graph = helper.make_graph(
        [
            helper.make_node("Flatten", ["input"], ["f"], axis=1),
            helper.make_node("MatMul", ["f", "W"], ["y"]),
        ],
        "g",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 1, 40])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])],
        [weight],
    )
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    return path


class _FailsToRun:
    """A real session whose `run` raises an exception with an empty message."""

    def __init__(self, session: onnxruntime.InferenceSession) -> None:
        self.session = session

    def get_inputs(self):
        return self.session.get_inputs()

    def get_outputs(self):
        return self.session.get_outputs()

    def run(self, *args, **kwargs):
        raise RuntimeError("")


@pytest.mark.parametrize("where", ["load", "input"])
def test_an_exception_with_an_empty_message_is_a_failed_check_not_an_index_error(
    tmp_path, monkeypatch, where
):
    path = _tiny_file(tmp_path)
    real = onnxruntime.InferenceSession

    def session(*args, **kwargs):
        if where == "load":
            raise RuntimeError("")
        return _FailsToRun(real(*args, **kwargs))

    monkeypatch.setattr(onnxruntime, "InferenceSession", session)
    result = invoke("validate", str(path), "--data", "synthetic")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"broken, failed check: {where}" in result.output
    line = next(x for x in result.output.splitlines() if f"{where}:" in x)
    assert line.rstrip().endswith(": RuntimeError"), line
