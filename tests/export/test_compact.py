"""Compact export: physically smaller models whose outputs equal the masked model's."""

import json
from collections import OrderedDict

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from nets import BottleneckResNet, DenseNetish, MobileNetV2ish, TinyTransformer, randomize_constants
from torch import nn

from paiexport.export.compact import AddConstant, SelectFeatures, compact_model, max_abs_diff
from paiexport.export.torch_export import to_onnx
from paiexport.models import BasicBlock, ModelName, build_model
from paiexport.sparsity.depgraph import DependencyGraph, build_graph
from paiexport.sparsity.groups import group_masks
from paiexport.sparsity.masks import attach_masks, prunable_weights, strip_masks
from paiexport.sparsity.shrink_attention import PrunedMultiheadAttention
from paiexport.sparsity.structure import select_structured
from paiexport.sparsity.types import SparsityConfig


def channel_masks(model: nn.Module, g: torch.Generator, single: str) -> dict[str, torch.Tensor]:
    """Random whole-row masks; `single` keeps exactly one channel; the classifier stays whole."""
    weights = prunable_weights(model)
    last = list(weights)[-1]
    masks = {}
    for name, w in weights.items():
        rows = torch.rand(w.shape[0], generator=g) > 0.5
        if name == single:
            rows[:] = False
            rows[1] = True
        if name == last:
            rows[:] = True
        rows[0] |= not rows.any()
        masks[name] = rows.view(-1, *[1] * (w.dim() - 1)).expand_as(w).clone()
    return masks


def conv2d_bn(shape: tuple[int, ...]) -> nn.Module:
    layers = {
        "conv1": nn.Conv2d(shape[0], 8, 3, padding=1, bias=False),
        "bn1": nn.BatchNorm2d(8),
        "relu1": nn.ReLU(),
        "conv2": nn.Conv2d(8, 8, 3, padding=1, bias=False),
        "bn2": nn.BatchNorm2d(8),
        "relu2": nn.ReLU(),
        "pool": nn.MaxPool2d(2),
        "flatten": nn.Flatten(),
        "out": nn.Linear(8 * 4 * 4, 5),
    }
    return nn.Sequential(OrderedDict(layers))


CASES = {
    "mlp": (lambda s: build_model(ModelName.mlp, {"hidden": [32, 16]}, s, 10), (1, 40), "fc2.weight"),
    "conv1d_bn": (
        lambda s: build_model(ModelName.cnn1d, {"channels": [8, 8, 8], "hidden": 16}, s, 10),
        (1, 40),
        "conv2.weight",
    ),
    "conv2d_bn": (conv2d_bn, (3, 8, 8), "conv1.weight"),
    "residual": (
        lambda s: build_model(ModelName.resnet20, {"width": 4, "blocks_per_stage": 2}, s, 10),
        (3, 16, 16),
        "blocks.3.conv1.weight",
    ),
}


def ort_run(model: nn.Module, shape: tuple[int, ...], x: np.ndarray) -> np.ndarray:
    proto = to_onnx(model, shape, opset=18)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("seed", [0, 1])
def test_compact_equals_masked_model(case, seed):
    build, shape, single = CASES[case]
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = build(shape)
    randomize_constants(model, g)
    attach_masks(model, channel_masks(model, g, single))
    model = strip_masks(model).eval()
    result = compact_model(model, shape)
    x = torch.randn(8, *shape, generator=g)
    assert max_abs_diff(model, result.model, x) < 1e-5
    assert result.params_after < result.params_before
    # the layer left with one channel really has one
    single_layer = dict(result.model.named_modules())[single.removesuffix(".weight")]
    if isinstance(single_layer, nn.Sequential):  # (layer, AddConstant): a folded padded constant
        single_layer = single_layer[0]
    assert single_layer.weight.shape[0] == 1
    if seed == 0:  # the exported compact graph agrees too
        with torch.no_grad():
            expected = model(x).numpy()
        np.testing.assert_allclose(ort_run(result.model, shape, x.numpy()), expected, atol=1e-4)


def test_dead_unit_constant_is_folded_into_next_bias_by_hand():
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 2.0], [0.0, 0.0]]))  # unit 1 is dead
        model[0].bias.copy_(torch.tensor([0.1, 0.5]))  # and carries relu(0.5) = 0.5
        model[2].weight.copy_(torch.tensor([[3.0, 4.0]]))
        model[2].bias.copy_(torch.tensor([1.0]))
    small = compact_model(model, (2,)).model
    assert small[0].weight.shape == (1, 2) and small[2].weight.shape == (1, 1)
    assert small[2].bias.item() == pytest.approx(1.0 + 4.0 * 0.5)
    x = torch.tensor([[1.0, -1.0], [2.0, 3.0]])
    torch.testing.assert_close(small(x), model(x))


def test_unused_units_and_unread_inputs_are_removed():
    model = nn.Sequential(nn.Flatten(), nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 3))
    with torch.no_grad():
        model[1].weight[:, [0, 4]] = 0  # inputs 0 and 4 are never read
        model[3].weight[:, 2] = 0  # hidden unit 2 is never read
    small = compact_model(model, (1, 6)).model
    gathers = [m for m in small.modules() if isinstance(m, SelectFeatures)]
    assert len(gathers) == 1 and gathers[0].index.tolist() == [1, 2, 3, 5]
    linears = [m for m in small.modules() if isinstance(m, nn.Linear)]
    assert [tuple(m.weight.shape) for m in linears] == [(3, 4), (3, 3)]
    x = torch.randn(5, 1, 6)
    torch.testing.assert_close(small(x), model(x))
    proto = to_onnx(small, (1, 6), opset=18)
    assert "Gather" in {n.op_type for n in proto.graph.node}


def test_padded_conv_gets_position_dependent_constant():
    """A dead channel's constant seen through zero padding differs at the borders."""
    model = nn.Sequential(nn.Conv1d(1, 2, 3, padding=1), nn.ReLU(), nn.Conv1d(2, 2, 3, padding=1))
    with torch.no_grad():
        model[0].weight[1] = 0
        model[0].bias.copy_(torch.tensor([0.0, 2.0]))
    small = compact_model(model, (1, 6)).model
    assert any(isinstance(m, AddConstant) for m in small.modules())
    x = torch.randn(3, 1, 6)
    torch.testing.assert_close(small(x), model(x))


def test_block_output_channels_are_kept():
    torch.manual_seed(0)
    block = BasicBlock(4, 4, 1).eval()
    with torch.no_grad():
        block.conv2.weight[2] = 0  # joins the addition: must stay
        block.conv1.weight[1] = 0  # internal: removed
    small = compact_model(nn.Sequential(block), (4, 6, 6)).model[0]
    assert small.bn2.num_features == 4 and small.bn1.num_features == 3
    x = torch.randn(2, 4, 6, 6)
    torch.testing.assert_close(small(x), block(x))


def tiny_resnet20() -> nn.Module:
    return build_model(ModelName.resnet20, {"width": 4, "blocks_per_stage": 1}, (3, 8, 8), 5)


NETS = {
    "resnet20": (tiny_resnet20, (3, 8, 8), True),
    "bottleneck_resnet": (BottleneckResNet, (3, 16, 16), False),
    "mobilenetv2": (MobileNetV2ish, (3, 16, 16), True),
    "densenet": (DenseNetish, (3, 8, 8), False),
    "transformer": (TinyTransformer, (5, 6), True),
}


def one_channel_groups(graph: DependencyGraph, g: torch.Generator) -> dict[int, torch.Tensor]:
    """Half the channels of every prunable group at random; the second group keeps exactly one."""
    keep = {}
    for k, i in enumerate(graph.prunable):
        kept = torch.rand(graph.groups[i].size, generator=g) > 0.5
        kept[:] = kept if k != 1 else torch.arange(len(kept)) == len(kept) - 1
        kept[0] |= not kept.any()
        keep[i] = kept
    return keep


@pytest.mark.parametrize("case", list(NETS))
def test_compact_export_removes_channel_groups_exactly(case):
    build, shape, check_onnx = NETS[case]
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    model = build().eval()
    randomize_constants(model, g)
    graph = build_graph(model, torch.zeros(2, *shape))
    keep = one_channel_groups(graph, g)
    attach_masks(model, group_masks(graph, keep, prunable_weights(model)))
    model = strip_masks(model).eval()
    result = compact_model(model, shape)
    x = torch.randn(6, *shape, generator=g)
    assert max_abs_diff(model, result.model, x) <= 1e-4
    # the group left with one channel has one channel in every producer
    single = graph.groups[graph.prunable[1]]
    small = dict(result.model.named_modules())
    for m in (m for m in single.members if m.role == "out"):
        layer = small[m.module]
        layer = layer[0] if isinstance(layer, nn.Sequential) else layer  # wrapped with AddConstant
        assert getattr(layer, m.param).shape[m.dim] == 1
    assert result.params_after < result.params_before
    # attention heads: the module holds exactly the kept heads
    heads = {i: m.module for i, k in keep.items() for m in graph.groups[i].members if m.role == "qkv"}
    for i, name in heads.items():
        assert small[name].num_heads == int(keep[i].sum())
    assert len(heads) == (2 if case == "transformer" else 0)  # one head group per encoder layer
    if check_onnx:
        with torch.no_grad():
            expected = model(x).numpy()
        np.testing.assert_allclose(ort_run(result.model, shape, x.numpy()), expected, atol=1e-4)


def test_resnet20_at_75_percent_channels_compacts_residual_channels():
    """Residual-coupled channels are pruned and removed: stage widths shrink, not only inner convs."""
    torch.manual_seed(0)
    shape = (3, 16, 16)
    model = build_model(ModelName.resnet20, {"width": 8, "blocks_per_stage": 1}, shape, 10).eval()
    scores = {n: w.detach().abs() for n, w in prunable_weights(model).items()}
    cfg = SparsityConfig(target=0.75, distribution="uniform", structure="channel")
    attach_masks(model, select_structured(scores, model, cfg, torch.zeros(2, *shape)))
    model = strip_masks(model).eval()
    result = compact_model(model, shape)
    assert result.model.conv1.weight.shape[0] == 2  # the stem feeds the shortcuts: 8 -> 2
    assert result.params_after < 0.3 * result.params_before
    assert max_abs_diff(model, result.model, torch.randn(4, *shape)) <= 1e-4


def transformer_with_heads(keep0: list[bool], keep1: list[bool]) -> tuple[nn.Module, nn.Module]:
    """TinyTransformer (2 layers x 2 heads) masked with these heads kept; (masked, compact)."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    model = TinyTransformer().eval()
    randomize_constants(model, g)
    graph = build_graph(model, torch.zeros(2, 5, 6))
    heads = [i for i in graph.prunable if any(m.role == "qkv" for m in graph.groups[i].members)]
    assert len(heads) == 2  # one prunable head group per encoder layer
    keep = {i: torch.tensor(k) for i, k in zip(heads, (keep0, keep1), strict=True)}
    attach_masks(model, group_masks(graph, keep, prunable_weights(model)))
    model = strip_masks(model).eval()
    return model, compact_model(model, (5, 6)).model


def test_transformer_compact_removes_whole_heads():
    model, small = transformer_with_heads([False, True], [True, True])
    layers = small.encoder.layers
    assert isinstance(layers[0].self_attn, PrunedMultiheadAttention)
    assert layers[0].self_attn.num_heads == 1 and layers[0].self_attn.heads.tolist() == [1]
    assert layers[0].self_attn.q_proj.weight.shape == (4, 8)  # one head of 4 of the 8 rows
    assert isinstance(layers[1].self_attn, nn.MultiheadAttention)  # nothing to remove there
    x = torch.randn(6, 5, 6)
    assert max_abs_diff(model, small, x) <= 1e-4
    small.train()  # the plain path in training mode too (no fused-kernel attribute errors)
    small(x).sum().backward()
    assert layers[0].self_attn.q_proj.weight.grad.abs().sum() > 0
    with torch.no_grad():
        expected = model(x).numpy()
    np.testing.assert_allclose(ort_run(small.eval(), (5, 6), x.numpy()), expected, atol=1e-4)


def test_channel_structure_prunes_heads_as_whole_out_proj_column_blocks():
    torch.manual_seed(0)
    model = TinyTransformer().eval()
    scores = {n: w.detach().abs() for n, w in prunable_weights(model).items()}
    cfg = SparsityConfig(target=0.4, distribution="uniform", structure="channel")
    masks = select_structured(scores, model, cfg, torch.zeros(2, 5, 6))
    for layer in range(2):
        cols = masks[f"encoder.layers.{layer}.self_attn.out_proj.weight"]
        per_head = cols.T.reshape(2, -1)  # (head, its 4 columns x 8 rows)
        assert per_head.all(dim=1).sum() == 1 and (~per_head).all(dim=1).sum() == 1  # 1 of 2 heads
    attach_masks(model, masks)
    model = strip_masks(model).eval()
    small = compact_model(model, (5, 6)).model
    assert [layer.self_attn.num_heads for layer in small.encoder.layers] == [1, 1]
    assert max_abs_diff(model, small, torch.randn(4, 5, 6)) <= 1e-4


HEADNET = """
import torch
from torch import nn


class HeadNet(nn.Module):
    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.embed = nn.Linear(5, 16)
        layer = nn.TransformerEncoderLayer(16, 4, dim_feedforward=32, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.head = nn.Linear(16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(x.reshape(x.shape[0], 8, 5))  # (1, 40) signal -> 8 tokens of 5
        return self.head(self.encoder(tokens).mean(dim=1))
"""


def test_compact_training_run_of_a_user_transformer_removes_heads(tmp_path, write_recipe, tiny_recipe_dict):
    """`structure: channel` + `train.compact` on your own transformer; `paiexport export` rebuilds it."""
    from typer.testing import CliRunner

    from paiexport.cli import app

    (tmp_path / "headnet.py").write_text(HEADNET)
    raw = tiny_recipe_dict
    raw["model"] = {"name": "headnet:HeadNet", "args": {}}
    raw["sparsity"] = {"target": 0.5, "distribution": "uniform", "structure": "channel"}
    raw["train"].update({"epochs": 1, "compact": True})
    raw["export"]["formats"] = ["dense"]
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", str(write_recipe(raw)), "--out", str(out)])
    assert result.exit_code == 0, result.output
    section = json.loads((out / "report.json").read_text())["train_compact"]
    assert section["params_trained"] < 0.7 * section["params_full"]
    masks = torch.load(out / "masks.pt")["encoder.layers.0.self_attn.out_proj.weight"]
    kept = int(masks.T.reshape(4, -1).any(dim=1).sum())  # heads = blocks of 4 out_proj columns
    assert 1 <= kept < 4
    proto = onnx.load(str(out / "model.onnx"))
    # q, k and v of the kept heads (MatMul holds them transposed); no 48-row in_proj_weight
    shapes = sorted(tuple(t.dims) for t in proto.graph.initializer if len(t.dims) == 2)
    assert shapes.count((16, 4 * kept)) == 3 and not any(48 in s for s in shapes)
    # headnet is the recipe's factory module: export runs its code only with --trust-code
    export = ["export", str(out), "--formats", "dense", "--out", str(tmp_path / "re"), "--trust-code"]
    again = CliRunner().invoke(app, export)
    assert again.exit_code == 0, again.output
    re_proto = onnx.load(str(tmp_path / "re" / "model.onnx"))
    assert sorted(tuple(t.dims) for t in re_proto.graph.initializer if len(t.dims) == 2) == shapes
