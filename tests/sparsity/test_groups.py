"""Group scores from per-weight scores (sum, mean, l2; -inf stays), masks zeroing producer rows only."""

from __future__ import annotations

import pytest
import torch
from nets import TinyRes

from paiexport.sparsity.depgraph import build_graph
from paiexport.sparsity.groups import group_masks, group_score
from paiexport.sparsity.masks import prunable_weights
from paiexport.sparsity.types import ChannelReduce


def test_group_score_reduces_producer_rows_and_consumer_columns() -> None:
    graph = build_graph(TinyRes(), torch.zeros(1, 2, 6, 6))
    inner = next(g for g in graph.groups if g.size == 4)
    scores = {"conv1.weight": torch.zeros(4, 8, 3, 3), "conv2.weight": torch.zeros(8, 4, 3, 3)}
    scores["conv1.weight"][1] = 1.0  # row 1: 72 ones
    scores["conv2.weight"][:, 1] = 2.0  # column 1: 72 twos
    scores["conv2.weight"][:, 3] = -3.0
    scores["conv1.weight"][2, 0, 0, 0] = float("-inf")
    assert group_score(inner, scores, ChannelReduce.sum).tolist() == [0.0, 216.0, float("-inf"), -216.0]
    assert group_score(inner, scores, ChannelReduce.mean).tolist() == [0.0, 1.5, float("-inf"), -1.5]
    l2 = group_score(inner, scores, ChannelReduce.l2)
    assert l2[1].item() == pytest.approx((72 * 1 + 72 * 4) ** 0.5) and l2[3].item() == pytest.approx(648**0.5)


def test_group_masks_zero_producer_rows_only() -> None:
    model = TinyRes()
    graph = build_graph(model, torch.zeros(1, 2, 6, 6))
    residual = next(i for i, g in enumerate(graph.groups) if g.size == 8)
    kept = torch.tensor([True, False, True, True, True, True, True, False])
    masks = group_masks(graph, {residual: kept}, prunable_weights(model))
    for name in ("conv0.weight", "conv2.weight"):
        assert masks[name].reshape(8, -1).all(dim=1).tolist() == kept.tolist()
    assert masks["conv1.weight"].all() and masks["fc.weight"].all()  # consumers' columns stay


def test_a_pruned_head_of_separate_projections_zeroes_its_qkv_rows_and_output_columns() -> None:
    from paiexport.sparsity.depgraph import ChannelGroup, DependencyGraph, Member

    heads = [Member(p, "weight", 0, "head", 0, 2) for p in ("q", "k", "v")]
    group = ChannelGroup((*heads, Member("o", "weight", 1, "in", 0, 2)), 2, True)
    weights = {f"{p}.weight": torch.ones(4, 4) for p in "qkvo"}
    masks = group_masks(DependencyGraph([group]), {0: torch.tensor([False, True])}, weights)
    for p in "qkv":
        assert masks[f"{p}.weight"].all(dim=1).tolist() == [False, False, True, True]
    assert masks["o.weight"].all(dim=0).tolist() == [False, False, True, True]
