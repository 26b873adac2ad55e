"""`export.int8_min_channels`: narrow ops stay float in int8 files, wide ones are quantized."""

from __future__ import annotations

import numpy as np
import onnx
import torch
from torch import nn
from typer.testing import CliRunner

from paiexport.cli import app
from paiexport.export.quantize import narrow_nodes, to_int8
from paiexport.export.torch_export import to_onnx
from paiexport.export.variants import Int8Mode
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


def test_static_int8_keeps_narrow_convolutions_float(tmp_path):
    model = narrow_then_wide()
    proto = to_onnx(model, SHAPE, 18)
    x = torch.randn(64, *SHAPE, generator=torch.Generator().manual_seed(1))
    mixed = to_int8(proto, Int8Mode.static, x.numpy(), min_channels=16)
    everything = to_int8(proto, Int8Mode.static, x.numpy())
    assert _ops(mixed).count("QLinearConv") == 1 and _ops(mixed).count("Conv") == 1
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
