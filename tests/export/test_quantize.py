"""int8 files: `export.int8: auto` resolved per graph, static written as QDQ (standard ONNX) or
QOperator, and `export.int8_min_channels` (narrow ops stay float, wide ones are quantized)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper
from torch import nn
from typer.testing import CliRunner

from paiexport.cli import app
from paiexport.export.quantize import narrow_nodes, resolve_int8_mode, to_int8
from paiexport.export.torch_export import to_onnx
from paiexport.export.variants import Int8Format, Int8Mode
from paiexport.verify.validate import make_session, run_session

SHAPE = (3, 8, 8)


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def narrow_then_wide() -> nn.Module:
    """conv 3->4 (narrow), relu, conv 4->16 (wide), relu, pool, linear 16->5 (narrow)."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 16, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 5),
    ).eval()


def _ops(proto: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in proto.graph.node]


def test_narrow_nodes_are_narrow_weighted_ops_and_the_float_ops_after_them():
    proto = to_onnx(narrow_then_wide(), SHAPE, 18)
    by_name = {n.name: n.op_type for n in proto.graph.node}

    def narrow(min_channels: int) -> list[str]:
        return [by_name[name] for name in narrow_nodes(proto, min_channels)]

    # conv 3->4 and the relu reading it stay float; conv 4->16 (16 channels) and its relu and
    # pooling are quantized; the 5-output Gemm stays float
    assert narrow(16) == ["Conv", "Relu", "Gemm"]
    assert narrow(0) == [] and narrow(5) == ["Conv", "Relu"]  # 5 outputs are not fewer than 5
    # nothing is wide enough at 17: every node from the first conv on stays float
    assert narrow(17) == _ops(proto)


def _int8_convs(proto: onnx.ModelProto) -> tuple[int, int]:
    """(int8, float) convolutions: QLinearConv, or in QDQ a Conv whose weight is dequantized."""
    dequantized = {n.output[0] for n in proto.graph.node if n.op_type == "DequantizeLinear"}
    convs = [n for n in proto.graph.node if n.op_type == "Conv"]
    qdq = sum(n.input[1] in dequantized for n in convs)
    return _ops(proto).count("QLinearConv") + qdq, len(convs) - qdq


@pytest.mark.parametrize("written", list(Int8Format))
def test_static_int8_keeps_narrow_convolutions_float(tmp_path, written):
    model = narrow_then_wide()
    proto = to_onnx(model, SHAPE, 18)
    x = torch.randn(64, *SHAPE, generator=torch.Generator().manual_seed(1))
    mixed = to_int8(proto, Int8Mode.static, x.numpy(), min_channels=16, int8_format=written)
    everything = to_int8(proto, Int8Mode.static, x.numpy(), int8_format=written)
    assert _int8_convs(mixed) == (1, 1) and _int8_convs(everything) == (2, 0)
    if written is Int8Format.qoperator:  # the QOperator form still writes QLinearConv
        assert _ops(everything).count("QLinearConv") == 2 and "Conv" not in _ops(everything)
    path = tmp_path / "mixed.onnx"
    onnx.save_model(mixed, str(path))
    with torch.no_grad():
        expected = model(x).numpy()
    got = run_session(make_session(path), x.numpy())
    # int8 rounding only in the wide convolution: within a few quantization steps of float
    assert np.abs(got - expected).max() < 0.05 * np.abs(expected).max()


def test_run_applies_export_int8_min_channels(tmp_path, write_recipe, tiny_recipe_dict):
    # mlp 32-16-classes: with 32, only the first layer is quantized
    tiny_recipe_dict["export"].update({"formats": ["dense", "int8"], "int8_min_channels": 32})
    out = tmp_path / "run"
    result = invoke("run", str(write_recipe(tiny_recipe_dict)), "--out", str(out), "--set", "train.epochs=1")
    assert result.exit_code == 0, result.output
    dense, int8 = (_ops(onnx.load(str(out / f))) for f in ("model.onnx", "model.int8.onnx"))
    weighted = [op for op in dense if op in ("Gemm", "MatMul")]
    assert len(weighted) == 3
    assert int8.count("MatMulInteger") == 1 and sum(op in ("Gemm", "MatMul") for op in int8) == 2


def _graph(*nodes: onnx.NodeProto, weights: dict[str, tuple[int, ...]]) -> onnx.ModelProto:
    """A float graph x -> ... -> y of `nodes` whose initializers are zeros of `weights`' shapes."""
    inits = [helper.make_tensor(n, TensorProto.FLOAT, s, [0.0] * int(np.prod(s))) for n, s in weights.items()]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, None)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    return helper.make_model(helper.make_graph(list(nodes), "g", [x], [y], inits))


def test_auto_is_static_for_convolutions_and_dynamic_for_matmul_graphs():
    conv = _graph(
        helper.make_node("Conv", ["x", "w1"], ["h"]),
        helper.make_node("Conv", ["h", "w2"], ["y"]),
        weights={"w1": (4, 3, 3, 3), "w2": (4, 4, 3, 3)},
    )
    transposed = _graph(helper.make_node("ConvTranspose", ["x", "w"], ["y"]), weights={"w": (3, 4, 2, 2)})
    mlp = _graph(
        helper.make_node("MatMul", ["x", "w1"], ["h"]),
        helper.make_node("Gemm", ["h", "w2"], ["y"]),
        weights={"w1": (8, 8), "w2": (8, 2)},
    )
    mode, reason = resolve_int8_mode(conv, Int8Mode.auto)
    assert mode is Int8Mode.static and reason.startswith("graph has 2 Conv/ConvTranspose nodes")
    assert resolve_int8_mode(transposed, Int8Mode.auto)[0] is Int8Mode.static
    mode, reason = resolve_int8_mode(mlp, Int8Mode.auto)
    assert mode is Int8Mode.dynamic and reason.startswith("no Conv/ConvTranspose nodes")
    # a mode the recipe names is used as it is, convolutions or not
    assert resolve_int8_mode(conv, Int8Mode.dynamic) == (
        Int8Mode.dynamic,
        "export.int8: dynamic (set in the recipe)",
    )
    assert resolve_int8_mode(mlp, Int8Mode.static)[0] is Int8Mode.static


def test_qdq_int8_is_standard_onnx_and_close_to_float(tmp_path):
    model = narrow_then_wide()
    proto = to_onnx(model, SHAPE, 18)
    calibration = torch.randn(128, *SHAPE, generator=torch.Generator().manual_seed(1))
    int8 = to_int8(proto, Int8Mode.auto, calibration.numpy())  # auto: the graph has convolutions
    onnx.checker.check_model(int8, full_check=True)
    ops = _ops(int8)
    assert ops.count("QuantizeLinear") >= 3 and ops.count("DequantizeLinear") >= 3
    assert not [op for op in ops if op.startswith("QLinear") or op.endswith("Integer")]
    assert {n.domain for n in int8.graph.node} <= {"", "ai.onnx"}
    assert {o.domain for o in int8.opset_import} <= {"", "ai.onnx"}  # no com.microsoft anywhere
    path = tmp_path / "qdq.onnx"
    onnx.save_model(int8, str(path))
    x = torch.randn(256, *SHAPE, generator=torch.Generator().manual_seed(2))  # new draws, same law
    with torch.no_grad():
        expected = model(x).numpy()
    got = run_session(make_session(path), x.numpy())
    # 8-bit steps are 1/255 of each calibrated range; through two convolutions and a Gemm the
    # rounding adds up to a few steps of the output's range, and samples of the calibration's
    # distribution stay inside the ranges (a rare outlier is clipped): 5% of the largest output
    # leaves room for about a dozen steps, while a wrong scale or layout is off by far more
    assert np.abs(got - expected).max() < 0.05 * np.abs(expected).max()
    assert (got.argmax(1) == expected.argmax(1)).mean() >= 0.9


class Pooled(nn.Module):
    """Token ids and a mask (both int64) and float features: every input reaches the output."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed, self.scale, self.head = nn.Embedding(20, 16), nn.Linear(3, 16), nn.Linear(16, 4)

    def forward(self, input_ids, attention_mask, features):
        mask = attention_mask.unsqueeze(-1).float()
        pooled = (self.embed(input_ids) * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return self.head(torch.relu(pooled * self.scale(features)))


def pooled_inputs(n: int, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, 7, (n, 1), generator=g)
    return {
        "input_ids": torch.randint(0, 20, (n, 6), generator=g),
        "attention_mask": (torch.arange(6)[None] < lengths).long(),
        "features": torch.randn(n, 3, generator=g),
    }


@pytest.mark.parametrize("mode", [Int8Mode.static, Int8Mode.dynamic])
def test_int8_of_a_model_with_integer_and_several_inputs(tmp_path, mode):
    """Static calibration feeds every input (ids and masks as int64); dynamic int8 quantizes the
    MatMuls of an embedding model (MatMulInteger)."""
    model = Pooled().eval()
    proto = to_onnx(model, pooled_inputs(2, 0), 18)
    x = pooled_inputs(64, 1)
    calibration = {k: v.numpy() for k, v in x.items()}
    int8 = to_int8(proto, mode, calibration if mode is Int8Mode.static else None)
    ops = _ops(int8)
    assert ("DequantizeLinear" in ops) if mode is Int8Mode.static else ("MatMulInteger" in ops)
    assert [(i.name, i.type.tensor_type.elem_type) for i in int8.graph.input] == [
        ("input_ids", TensorProto.INT64),
        ("attention_mask", TensorProto.INT64),
        ("features", TensorProto.FLOAT),
    ]
    path = tmp_path / "int8.onnx"
    onnx.save_model(int8, str(path))
    with torch.no_grad():
        expected = model(**x).numpy()
    got = run_session(make_session(path), calibration)  # on the calibration samples: no clipping
    assert np.abs(got - expected).max() < 0.05 * np.abs(expected).max()
