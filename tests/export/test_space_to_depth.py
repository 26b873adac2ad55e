"""export.space_to_depth: narrow convolutions on 2x2 pixel blocks, with the same outputs."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from nets import randomize_constants
from torch import nn
from typer.testing import CliRunner

from paiexport.cli import app
from paiexport.export.space_to_depth import blocked_kernel, space_to_depth, strided_kernel
from paiexport.export.torch_export import to_onnx
from paiexport.models import ModelName, build_model
from paiexport.verify.validate import make_session, run_session


def test_a_centre_tap_maps_each_sub_pixel_to_itself():
    w = np.zeros((1, 1, 3, 3), np.float32)
    w[0, 0, 1, 1] = 2.0  # out[y, x] = 2 * in[y, x]
    blocked = blocked_kernel(w)
    assert blocked.shape == (4, 4, 3, 3)
    expected = np.zeros((4, 4, 3, 3), np.float32)
    for s in range(4):
        expected[s, s, 1, 1] = 2.0  # same sub-pixel, same block
    np.testing.assert_array_equal(blocked, expected)


def test_a_left_tap_reads_the_previous_block_for_sub_column_0():
    w = np.zeros((1, 1, 3, 3), np.float32)
    w[0, 0, 1, 0] = 1.0  # out[y, x] = in[y, x - 1]
    blocked = blocked_kernel(w)
    # sub-pixel (a, 0) reads (a, 1) of the block to the left; (a, 1) reads (a, 0) of its own block
    assert blocked[0, 1, 1, 0] == 1 and blocked[2, 3, 1, 0] == 1
    assert blocked[1, 0, 1, 1] == 1 and blocked[3, 2, 1, 1] == 1
    assert np.count_nonzero(blocked) == 4


def test_stride_2_kernels_read_blocks():
    one = np.full((1, 1, 1, 1), 3.0, np.float32)  # 1x1 stride 2 reads pixel (2i, 2j): sub-pixel 0
    np.testing.assert_array_equal(strided_kernel(one)[0, :, 0, 0], [3, 0, 0, 0])
    w = np.arange(9, dtype=np.float32).reshape(1, 1, 3, 3) + 1
    k = strided_kernel(w)  # rows 2i-1 (block i-1, sub 1), 2i (block i, sub 0), 2i+1 (block i, sub 1)
    assert k.shape == (1, 4, 2, 2)
    assert k[0, 3, 0, 0] == w[0, 0, 0, 0]  # pixel (2i-1, 2j-1): block (i-1, j-1), sub (1, 1)
    assert k[0, 0, 1, 1] == w[0, 0, 1, 1]  # pixel (2i, 2j): own block, sub (0, 0)
    assert k[0, 3, 1, 1] == w[0, 0, 2, 2]  # pixel (2i+1, 2j+1): own block, sub (1, 1)
    assert np.count_nonzero(k) == 9


class WithConstants(nn.Module):
    """Blocked region with a per-position constant (as compact's AddConstant), a per-channel
    constant, a scalar, and a graph output that is a narrow convolution's."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 1)
        self.register_buffer("map", torch.randn(4, 6, 6))
        self.register_buffer("per_channel", torch.randn(4, 1, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.relu(self.a(x) + self.map) * self.per_channel
        return self.b(y) * 0.5, y.mean(dim=(2, 3))


def tiny_resnet20() -> nn.Module:
    return build_model(ModelName.resnet20, {"width": 4, "blocks_per_stage": 2}, (3, 16, 16), 5)


def _outputs(proto: onnx.ModelProto, x: np.ndarray, tmp_path, name: str) -> list[np.ndarray]:
    path = tmp_path / f"{name}.onnx"
    onnx.save_model(proto, str(path))
    session = make_session(path)
    return session.run(None, {session.get_inputs()[0].name: x})


@pytest.mark.parametrize(("build", "shape"), [(tiny_resnet20, (3, 16, 16)), (WithConstants, (3, 6, 6))])
def test_relaid_graph_gives_the_same_outputs(build, shape, tmp_path):
    # WithConstants' outputs are read from blocks (DepthToSpace back); resnet's are not
    torch.manual_seed(0)
    model = build().eval()
    randomize_constants(model, torch.Generator().manual_seed(0))
    proto = to_onnx(model, shape, 18)
    blocked, count = space_to_depth(proto, 16)
    ops = [n.op_type for n in blocked.graph.node]
    assert count > 0 and "SpaceToDepth" in ops
    assert [o.name for o in blocked.graph.output] == [o.name for o in proto.graph.output]
    if build is WithConstants:  # both outputs read from blocks; the constants relaid, the scalar not
        relaid = {t.name: list(t.dims) for t in blocked.graph.initializer if t.name.endswith("__s2d")}
        assert ops.count("DepthToSpace") == 2
        assert relaid["map__s2d"] == [16, 3, 3] and relaid["per_channel__s2d"] == [16, 1, 1]
    x = np.random.default_rng(0).standard_normal((3, *shape)).astype(np.float32)
    for got, want in zip(_outputs(blocked, x, tmp_path, "b"), _outputs(proto, x, tmp_path, "p"), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_resnet_stride_2_convolutions_read_the_blocks(tmp_path):
    proto = to_onnx(tiny_resnet20().eval(), (3, 16, 16), 18)
    blocked, _ = space_to_depth(proto, 16)
    pads = [
        next(a.ints for a in n.attribute if a.name == "pads")
        for n in blocked.graph.node
        if n.op_type == "Conv"
    ]
    # stage 2 opens with a 3x3 stride-2 conv and a 1x1 stride-2 downsample, both on blocks
    assert [1, 1, 0, 0] in [list(p) for p in pads]
    # blocks are never turned back into pixels: the stride-2 convolutions into stages 2 and 3
    # read them, and stage 3 (16 channels) is not narrow
    assert "DepthToSpace" not in [n.op_type for n in blocked.graph.node]


def test_nothing_to_relay_leaves_the_graph_alone():
    odd = to_onnx(nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU()).eval(), (3, 7, 7), 18)
    wide = to_onnx(nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU()).eval(), (3, 8, 8), 18)
    for proto in (odd, wide):
        same, count = space_to_depth(proto, 16)
        assert count == 0 and same.graph == proto.graph


def test_run_with_space_to_depth_ships_a_relaid_compact_file(tmp_path, write_recipe):
    recipe = {
        "name": "s2d",
        "seed": 0,
        "data": {"name": "digits", "batch_size": 64, "val_fraction": 0.1},
        "model": {"name": "resnet20", "args": {"width": 8, "blocks_per_stage": 1}},
        "sparsity": {"target": 0.5, "distribution": "uniform", "structure": "channel"},
        "method": {"name": "synflow"},
        "train": {"epochs": 1},
        "export": {"formats": ["dense", "compact"], "space_to_depth": 16},
        "bench": {"batch_sizes": [1], "threads": [1], "warmup": 1, "iterations": 2},
    }
    out = tmp_path / "run"
    result = CliRunner().invoke(
        app, ["run", str(write_recipe(recipe)), "--out", str(out)], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["compact"]["space_to_depth_convs"] > 0
    assert report["validation"]["compact"]["parity"]
    ops = [n.op_type for n in onnx.load(str(out / "model.compact.onnx")).graph.node]
    assert "SpaceToDepth" in ops and "SpaceToDepth" not in [
        n.op_type for n in onnx.load(str(out / "model.onnx")).graph.node
    ]
    x = np.random.default_rng(1).standard_normal((4, 1, 8, 8)).astype(np.float32)
    dense, compact = (run_session(make_session(out / f), x) for f in ("model.onnx", "model.compact.onnx"))
    np.testing.assert_allclose(compact, dense, atol=1e-4)


def test_an_omitted_optional_input_stays_omitted(tmp_path):
    # Clip(x, min omitted, max): the blocked Clip keeps "" for min and reads the blocks
    rng = np.random.default_rng(0)
    w = onnx.numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    top = onnx.numpy_helper.from_array(np.array(0.5, np.float32), "top")
    nodes = [
        onnx.helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1] * 4, kernel_shape=[3, 3]),
        onnx.helper.make_node("Clip", ["c", "", "top"], ["y"], name="clip"),
    ]
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 3, 4, 4])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2, 4, 4, 4])
    graph = onnx.helper.make_graph(nodes, "g", [x], [y], [w, top])
    proto = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18)])
    blocked, count = space_to_depth(proto, 16)
    clip = next(n for n in blocked.graph.node if n.op_type == "Clip")
    assert count == 1 and list(clip.input) == ["c__s2d", "", "top"]
    x = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    np.testing.assert_allclose(
        _outputs(blocked, x, tmp_path, "b")[0], _outputs(proto, x, tmp_path, "p")[0], atol=1e-5
    )
