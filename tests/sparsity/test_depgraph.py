"""Channel dependency graph: the groups found, and exact compaction through them."""

from __future__ import annotations

import pytest
import torch
from nets import (
    BottleneckResNet,
    DenseNetish,
    MobileNetV2ish,
    RolledRes,
    SEResNet,
    TinyRes,
    TinyTransformer,
    randomize_constants,
)
from torch import nn

from paiexport.models import ModelName, build_model
from paiexport.sparsity.depgraph import DependencyGraph, build_graph
from paiexport.sparsity.groups import group_masks
from paiexport.sparsity.masks import prunable_weights
from paiexport.sparsity.shrink import shrink_model


def random_keep(graph: DependencyGraph, g: torch.Generator, single: int) -> dict[int, torch.Tensor]:
    """Keep each channel with probability 1/2; the `single`-th prunable group keeps exactly one."""
    keep = {}
    for k, i in enumerate(graph.prunable):
        kept = torch.rand(graph.groups[i].size, generator=g) > 0.5
        if k == single:
            kept[:] = False
            kept[-1] = True
        kept[0] |= not kept.any()
        keep[i] = kept
    return keep


def resnet20() -> nn.Module:
    return build_model(ModelName.resnet20, {"width": 4, "blocks_per_stage": 1}, (3, 8, 8), 5)


CASES = {
    "resnet20": (resnet20, (3, 8, 8)),
    "bottleneck_resnet": (BottleneckResNet, (3, 16, 16)),
    "mobilenetv2": (MobileNetV2ish, (3, 16, 16)),
    "densenet": (DenseNetish, (3, 8, 8)),
    "transformer": (TinyTransformer, (5, 6)),
    "squeeze_excite": (SEResNet, (3, 8, 8)),
    "mlp": (lambda: build_model(ModelName.mlp, {"hidden": [16, 8]}, (40,), 5), (40,)),
    "cnn1d": (
        lambda: build_model(ModelName.cnn1d, {"channels": [4, 4, 4], "hidden": 8}, (1, 40), 5),
        (1, 40),
    ),
    "lenet5": (lambda: build_model(ModelName.lenet5, {}, (1, 8, 8), 5), (1, 8, 8)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_shrink_matches_masked_model(case: str) -> None:
    build, shape = CASES[case]
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = build().eval()
    randomize_constants(model, g)
    example = torch.randn(4, *shape, generator=g)
    graph = build_graph(model, example)
    assert len(graph.prunable) >= 2 and not graph.notes
    keep = random_keep(graph, g, single=1)
    masks = group_masks(graph, keep, prunable_weights(model))
    with torch.no_grad():
        for name, w in prunable_weights(model).items():
            w.mul_(masks[name])
    result = shrink_model(model, graph, example)
    expected = {i: int((~k).sum()) for i, k in keep.items() if not k.all()}
    assert result.removed == expected
    assert result.params_after < result.params_before
    x = torch.randn(6, *shape, generator=g)
    with torch.no_grad():
        diff = (model(x) - result.model(x)).abs().max()
    assert diff <= 1e-4


def test_groups_of_a_residual_block() -> None:
    graph = build_graph(TinyRes(), torch.zeros(1, 2, 6, 6))
    found = {frozenset((m.module, m.role) for m in g.members): (g.size, g.prunable) for g in graph.groups}
    residual = {
        ("conv0", "out"),
        ("bn0", "norm"),
        ("conv1", "in"),
        ("conv2", "out"),
        ("bn2", "norm"),
        ("fc", "in"),
    }
    assert found == {
        frozenset(residual): (8, True),
        frozenset({("conv1", "out"), ("bn1", "norm"), ("conv2", "in")}): (4, True),
        frozenset({("fc", "out")}): (3, False),
    }


def test_unknown_op_leaves_its_group_dense() -> None:
    model = RolledRes().eval()
    graph = build_graph(model, torch.zeros(1, 2, 6, 6))
    inner = next(g for g in graph.groups if any(m.module == "conv1" and m.role == "out" for m in g.members))
    assert not inner.prunable and "roll" in inner.note
    with torch.no_grad():  # rows zeroed in a blocked group are not removed: roll moves them
        model.conv1.weight[:2] = 0
        model.conv1.bias[:2] = 0
    x = torch.randn(3, 2, 6, 6)
    result = shrink_model(model, graph, x)
    assert result.model.conv1.out_channels == 4 and result.removed == {}
    assert torch.allclose(model(x), result.model(x), atol=1e-5)


@pytest.mark.parametrize("case", list(CASES))
def test_inputs_and_logits_never_prunable(case: str) -> None:
    build, shape = CASES[case]
    model = build().eval()
    graph = build_graph(model, torch.zeros(2, *shape))
    last = list(prunable_weights(model))[-1].removesuffix(".weight")
    first = next(iter(prunable_weights(model))).removesuffix(".weight")
    for i in graph.prunable:
        members = {(m.module, m.role) for m in graph.groups[i].members}
        assert (last, "out") not in members and (first, "in") not in members


def test_untraceable_model_gives_a_note() -> None:
    class Branchy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(3, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x) if x.sum() > 0 else x

    graph = build_graph(Branchy(), torch.zeros(1, 3))
    assert graph.groups == [] and graph.notes[0].startswith("cannot trace: ")


def test_squeeze_excitation_gate_shares_the_block_channels() -> None:
    graph = build_graph(SEResNet(), torch.zeros(1, 3, 8, 8))
    gated = next(g for g in graph.groups if any(m.module == "conv1" and m.role == "out" for m in g.members))
    roles = {(m.module, m.role) for m in gated.members}
    assert {("excite", "out"), ("stem", "out"), ("squeeze", "in"), ("fc", "in")} <= roles and gated.prunable


def test_shared_module_is_left_dense() -> None:
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.first, self.shared, self.out = nn.Linear(4, 6), nn.Linear(6, 6), nn.Linear(6, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.out(self.shared(torch.relu(self.shared(self.first(x)))))

    graph = build_graph(Twice(), torch.zeros(1, 4))
    assert graph.prunable == []
    first = next(g for g in graph.groups if any(m.module == "first" for m in g.members))
    assert "shared module (called more than once) Linear (shared)" in first.note


def test_grouped_conv_and_layernorm_leave_their_inputs_dense() -> None:
    model = nn.Sequential(
        nn.Conv2d(2, 4, 3),
        nn.Conv2d(4, 4, 1, groups=2),
        nn.Conv2d(4, 6, 1),
        nn.Flatten(),
        nn.LayerNorm(6 * 16),
    )
    graph = build_graph(model, torch.zeros(1, 2, 6, 6))
    notes = {g.members[0].module: g.note for g in graph.groups}
    assert notes == {
        "0": "grouped conv 1 (groups=2) kept dense",
        "2": "LayerNorm (4) normalizes over channels; model output",
    }
    assert graph.prunable == []


class SelfAttention(nn.Module):
    def __init__(self, read_weights: bool = False, **kwargs: object) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(8, 4, batch_first=True, **kwargs)
        self.fc = nn.Linear(8, 3)
        self.read_weights = read_weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, weights = self.attn(x, x, x)
        if self.read_weights:
            out = out * weights.sum()
        return self.fc(out.mean(dim=1))


def head_group(model: nn.Module) -> object:
    graph = build_graph(model, torch.zeros(2, 5, 8))
    [group] = [g for g in graph.groups if any(m.role == "qkv" for m in g.members)]
    return group


def test_attention_heads_are_a_prunable_group() -> None:
    group = head_group(SelfAttention())
    assert group.prunable and group.size == 4 and group.note == ""
    # q, k, v row blocks of 2 per head at offsets 0, 8, 16, and the head's out_proj columns
    assert {(m.param, m.role, m.offset, m.per) for m in group.members} == {
        ("in_proj_weight", "qkv", 0, 2),
        ("in_proj_weight", "qkv", 8, 2),
        ("in_proj_weight", "qkv", 16, 2),
        ("weight", "in", 0, 2),
    }


@pytest.mark.parametrize(
    ("kwargs", "why"),
    [
        ({"add_bias_kv": True}, "add_bias_kv"),
        ({"add_zero_attn": True}, "add_zero_attn"),
        ({"kdim": 6, "vdim": 6}, "kdim/vdim"),
        ({"read_weights": True}, "reads its attention weights"),
    ],
)
def test_attention_heads_stay_dense_where_removal_is_not_exact(kwargs: dict, why: str) -> None:
    if "kdim" in kwargs:  # cross-attention from 6-wide keys
        graph = build_graph(CrossAttention(**kwargs), torch.zeros(2, 5, 8))
        [group] = [g for g in graph.groups if any(m.role == "qkv" for m in g.members)]
    else:
        group = head_group(SelfAttention(**kwargs))
    assert not group.prunable
    assert "attention heads of attn kept dense" in group.note and why in group.note


class CrossAttention(nn.Module):
    def __init__(self, **kwargs: object) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(8, 4, batch_first=True, **kwargs)
        self.keys = nn.Linear(8, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.keys(x)
        return self.attn(x, k, k)[0].mean(dim=1)
