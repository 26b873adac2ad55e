"""Channel groups inside attention modules: heads of nn.MultiheadAttention, MLP units of encoder
layers, and the spaces around them kept dense."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from paiexport.sparsity.depgraph import ChannelGroup, DependencyGraph, Member, build_graph


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


class CrossAttention(nn.Module):
    def __init__(self, **kwargs: object) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(8, 4, batch_first=True, **kwargs)
        self.keys = nn.Linear(8, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.keys(x)
        return self.attn(x, k, k)[0].mean(dim=1)


class Embedded(nn.Module):
    """Linear embedding -> attention (2 heads of 4) -> mean -> Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(3, 8)
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
        self.fc = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        return self.fc(self.attn(h, h, h)[0].mean(dim=1))


class Encoded(nn.Module):
    """Linear embedding -> one encoder layer (2 heads of 4, MLP of 6 units) -> mean -> Linear."""

    def __init__(self, activation: object = "relu", layers: int = 0) -> None:
        super().__init__()
        self.embed = nn.Linear(3, 8)
        layer = nn.TransformerEncoderLayer(8, 2, 6, dropout=0.0, batch_first=True, activation=activation)
        self.layer = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False) if layers else layer
        self.fc = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.layer(self.embed(x)).mean(dim=1))


def members(group: ChannelGroup) -> set[tuple]:
    return {(m.module, m.param, m.dim, m.role, m.offset, m.per) for m in group.members}


def group_of(graph: DependencyGraph, module: str) -> ChannelGroup:
    [group] = [g for g in graph.groups if any(m.module == module for m in g.members)]
    return group


def head_group(model: nn.Module) -> ChannelGroup:
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


def test_separate_q_k_v_projections_are_the_head_rows() -> None:
    graph = build_graph(CrossAttention(kdim=6, vdim=6), torch.zeros(2, 5, 8))
    group = group_of(graph, "attn")
    assert members(group) == {
        ("attn", "q_proj_weight", 0, "qkv", 0, 2),
        ("attn", "k_proj_weight", 0, "qkv", 0, 2),
        ("attn", "v_proj_weight", 0, "qkv", 0, 2),
        ("attn.out_proj", "weight", 1, "in", 0, 2),
    }


def test_the_embed_dim_around_attention_stays_dense() -> None:
    graph = build_graph(Embedded(), torch.zeros(2, 5, 3))
    embed = group_of(graph, "embed")
    assert members(embed) == {("embed", "weight", 0, "out", 0, 1)}  # attention's input is no consumer
    assert not embed.prunable and embed.note == "MultiheadAttention (attn) keeps its embed dim"
    heads = group_of(graph, "attn")
    assert heads.prunable and heads.size == 2
    assert ("attn", "in_proj_weight", 0, "qkv", 8, 4) in members(heads)  # k rows of 2 heads of 4
    assert [graph.groups.index(heads)] == graph.prunable  # fc's rows are the logits


def test_encoder_layer_heads_and_mlp_units_are_groups() -> None:
    graph = build_graph(Encoded(), torch.zeros(2, 5, 3))
    assert (
        group_of(graph, "embed").note
        == "TransformerEncoderLayer (layer) normalizes over channels (LayerNorm)"
    )
    mlp = group_of(graph, "layer.linear1")
    assert members(mlp) == {
        ("layer.linear1", "weight", 0, "out", 0, 1),
        ("layer.linear2", "weight", 1, "in", 0, 1),
    }
    assert mlp.size == 6 and mlp.prunable
    heads = group_of(graph, "layer.self_attn")
    assert heads.size == 2 and heads.prunable
    assert ("layer.self_attn.out_proj", "weight", 1, "in", 0, 4) in members(heads)
    assert sorted(graph.prunable) == sorted(graph.groups.index(g) for g in (mlp, heads))


@pytest.mark.parametrize("activation", ["gelu", nn.GELU(), nn.ReLU()])
def test_per_unit_activations_keep_the_mlp_prunable(activation: object) -> None:
    graph = build_graph(Encoded(activation), torch.zeros(2, 5, 3))
    assert group_of(graph, "layer.linear1").prunable


def test_an_unknown_mlp_activation_leaves_the_units_dense() -> None:
    graph = build_graph(Encoded(nn.functional.silu), torch.zeros(2, 5, 3))
    mlp = group_of(graph, "layer.linear1")
    assert not mlp.prunable
    assert mlp.note.startswith("activation <function silu") and mlp.note.endswith(
        "of layer is not known to be per-unit"
    )
    assert group_of(graph, "layer.self_attn").prunable  # the heads do not depend on the activation


def test_every_layer_of_an_encoder_gets_its_own_groups() -> None:
    graph = build_graph(Encoded(layers=2), torch.zeros(2, 5, 3))
    prunable = [graph.groups[i] for i in graph.prunable]
    found = sorted((g.members[0].module, g.size) for g in prunable)
    assert found == [
        ("layer.layers.0.linear1", 6),
        ("layer.layers.0.self_attn", 2),
        ("layer.layers.1.linear1", 6),
        ("layer.layers.1.self_attn", 2),
    ]
    assert group_of(graph, "embed").note == "TransformerEncoder (layer) normalizes over channels (LayerNorm)"
    assert (
        Member("layer.layers.1.linear2", "weight", 1, "in")
        in group_of(graph, "layer.layers.1.linear1").members
    )
