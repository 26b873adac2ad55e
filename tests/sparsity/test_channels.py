"""`structure: channel`: weights per channel, channels kept per group (uniform, erk, global), the
exact whole-channel masks, and the notes and errors naming what cannot be pruned."""

from __future__ import annotations

import pytest
import torch
from hf_tiny import BERT, HF_REASON, LLAMA, tiny, tokens
from torch import nn

from paiexport.errors import UserError
from paiexport.sparsity.channels import (
    channel_counts,
    channel_masks,
    channel_notes,
    channel_weights,
    group_kind,
    usable_groups,
)
from paiexport.sparsity.depgraph import DependencyGraph, build_graph
from paiexport.sparsity.types import ChannelReduce, Distribution, SparsityConfig


def rows_kept(mask: torch.Tensor) -> list[int]:
    return mask.reshape(mask.shape[0], -1).any(dim=1).nonzero().flatten().tolist()


def two_layers(hidden: int, inputs: int) -> nn.Module:
    return nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, 2))


def three_layers() -> nn.Module:
    """Linear(4, 2) -> Linear(2, 2) -> Linear(2, 2): hidden groups of 4 and 2 weights per channel."""
    return nn.Sequential(nn.Linear(4, 2), nn.ReLU(), nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 2))


def index_of(graph: DependencyGraph, module: str) -> int:
    return next(
        i
        for i, g in enumerate(graph.groups)
        if any(m.module == module and m.role == "out" for m in g.members)
    )


def zero_scores(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: torch.zeros_like(p) for n, p in model.named_parameters() if n.endswith("weight")}


def channel(target: float, distribution: str = "uniform", **more: object) -> SparsityConfig:
    return SparsityConfig(target=target, distribution=distribution, structure="channel", **more)


def test_channel_weights_count_the_rows_a_pruned_channel_zeroes() -> None:
    conv = nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), nn.Conv2d(4, 3, 1))
    graph = build_graph(conv, torch.zeros(1, 2, 5, 5))
    assert channel_weights(graph.groups[index_of(graph, "0")], zero_scores(conv)) == 2 * 3 * 3
    dw = nn.Sequential(nn.Conv2d(1, 3, 1), nn.Conv2d(3, 3, 3, groups=3), nn.Conv2d(3, 2, 1))
    graph = build_graph(dw, torch.zeros(1, 1, 5, 5))
    assert channel_weights(graph.groups[index_of(graph, "0")], zero_scores(dw)) == 1 + 9  # and the dw row


def test_a_head_counts_its_out_proj_columns() -> None:
    class Attend(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attn, self.fc = nn.MultiheadAttention(8, 4, batch_first=True), nn.Linear(8, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(self.attn(x, x, x)[0].mean(dim=1))

    model = Attend()
    graph = build_graph(model, torch.zeros(2, 5, 8))
    [heads] = graph.prunable
    scores = {"attn.out_proj.weight": torch.zeros(8, 8), "fc.weight": torch.zeros(3, 8)}
    assert channel_weights(graph.groups[heads], scores) == 8 * 2  # 8 rows x the head's 2 columns


def test_uniform_keeps_the_same_fraction_of_every_group() -> None:
    rows = {0: torch.zeros(4), 1: torch.zeros(10)}
    assert channel_counts(rows, {0: 1, 1: 10}, 0.5, Distribution.uniform) == {0: 2, 1: 5}
    assert channel_counts(rows, {0: 1, 1: 10}, 0.01, Distribution.uniform) == {0: 1, 1: 1}  # at least one


def test_erk_keeps_narrow_groups_denser() -> None:
    # raw densities (4+1)/4 and (10+10)/100; eps 52/25 makes group 0 dense, then group 1: 48/100
    rows = {0: torch.zeros(4), 1: torch.zeros(10)}
    assert channel_counts(rows, {0: 1, 1: 10}, 0.5, Distribution.erk) == {0: 4, 1: 5}


def test_global_takes_the_best_channels_until_the_budget_is_spent() -> None:
    # budget 0.5 x 8 = 4 weights: 4 (1 weight), 3.5 (2), 3 (1); the next would pass 4 + 1/2
    rows = {0: torch.tensor([4.0, 3.0, 2.0, 1.0]), 1: torch.tensor([3.5, 0.5])}
    assert channel_counts(rows, {0: 1, 1: 2}, 0.5, Distribution.global_) == {0: 2, 1: 1}
    # a budget of 0.6 x 6 = 3.6 weights takes a second row of 2: 4 is nearer than 2
    assert channel_counts({0: torch.tensor([3.0, 2.0, 1.0])}, {0: 2}, 0.6, Distribution.global_) == {0: 2}


def test_channel_masks_keep_best_channels_of_the_group() -> None:
    # 4 hidden channels of 2 weights; row sums 1, 10, 3, 7. The classifier (8 weights) stays
    # dense, so target 0.25 of all 16 weights removes half of the 8 in the hidden group.
    model = two_layers(4, 2)
    a = torch.tensor([[0.5, 0.5], [5.0, 5.0], [1.0, 2.0], [3.0, 4.0]])
    cfg = channel(0.25)
    graph = build_graph(model, torch.zeros(2, 2))
    masks = channel_masks({"0.weight": a, "2.weight": torch.zeros(2, 4)}, cfg, graph)
    assert rows_kept(masks["0.weight"]) == [1, 3] and masks["2.weight"].all()
    assert masks["0.weight"].tolist() == [[False, False], [True, True], [False, False], [True, True]]
    # The consumer's input column scores count too: column 0 adds 20 to channel 0.
    b = torch.tensor([[20.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    masks = channel_masks({"0.weight": a, "2.weight": b}, cfg, graph)
    assert rows_kept(masks["0.weight"]) == [0, 1] and masks["2.weight"].all()  # columns stay


def test_l2_and_sum_can_disagree() -> None:
    model = two_layers(2, 4)
    w = torch.tensor([[1.0, 1.0, 1.0, 1.0], [2.5, 0.0, 0.0, 0.0]])  # sums 4, 2.5; l2 2, 2.5
    scores = {"0.weight": w, "2.weight": torch.zeros(2, 2)}
    cfg = channel(0.4)
    graph = build_graph(model, torch.zeros(2, 4))
    assert rows_kept(channel_masks(scores, cfg, graph)["0.weight"]) == [0]
    cfg_l2 = cfg.model_copy(update={"channel_reduce": ChannelReduce.l2})
    assert rows_kept(channel_masks(scores, cfg_l2, graph)["0.weight"]) == [1]


def test_sum_and_mean_rank_groups_of_different_widths_differently() -> None:
    """Global over two groups: channel scores (sum over 6 values, 4 weights each) 4, 3.5 and
    (sum over 4 values, 2 weights each) 3, 2.9; means 0.67, 0.58 and 0.75, 0.725."""
    model = three_layers()
    scores = zero_scores(model)
    scores["0.weight"][:, 0] = torch.tensor([1.05, 0.55])  # + fc2 columns 2.95 each
    scores["2.weight"].copy_(torch.tensor([[1.5, 1.5], [1.45, 1.45]]))
    graph = build_graph(model, torch.zeros(1, 4))
    # 16 weights, 12 in groups; target 0.25 leaves a budget of 8: two channels of 4, or 1 x 4 + 2 x 2
    by_sum = channel_masks(scores, channel(0.25, "global"), graph)
    assert rows_kept(by_sum["0.weight"]) == [0, 1] and rows_kept(by_sum["2.weight"]) == [0]
    assert by_sum["2.weight"].tolist() == [[True, True], [False, False]] and by_sum["4.weight"].all()
    by_mean = channel_masks(scores, channel(0.25, "global", channel_reduce="mean"), graph)
    assert rows_kept(by_mean["0.weight"]) == [0] and by_mean["2.weight"].all()  # fc2's columns stay


def test_a_channel_pruned_earlier_never_comes_back() -> None:
    model = two_layers(4, 2)
    scores = {"0.weight": torch.ones(4, 2), "2.weight": torch.zeros(2, 4)}
    scores["0.weight"][2, 1] = float("-inf")
    graph = build_graph(model, torch.zeros(2, 2))
    masks = channel_masks(scores, channel(0.05), graph)  # 4 of 4 channels wanted, 3 alive
    assert rows_kept(masks["0.weight"]) == [0, 1, 3]


def test_a_group_with_an_excluded_producer_stays_dense() -> None:
    model = three_layers()
    scores = zero_scores(model)
    del scores["0.weight"]  # sparsity.exclude
    scores["2.weight"][1] = 1.0
    graph = build_graph(model, torch.zeros(1, 4))
    assert usable_groups(graph, scores) == [index_of(graph, "2")]
    masks = channel_masks(scores, channel(0.25), graph)  # 2 of 8 weights: 1 of the 2 channels
    assert sorted(masks) == ["2.weight", "4.weight"]
    assert rows_kept(masks["2.weight"]) == [1] and masks["4.weight"].all()


def test_notes_name_the_prunable_share_and_the_dense_classifier() -> None:
    model = two_layers(4, 2)
    graph = build_graph(model, torch.zeros(2, 2))
    notes = channel_notes(graph, zero_scores(model))
    assert notes == [
        "sparsity.structure channel: 50.0% of the prunable weights are in prunable channel groups "
        "(residual-coupled channels are pruned together); kept dense: 2 (model output: the classifier)."
    ]


def test_a_target_beyond_the_prunable_share_is_one_line_naming_the_field() -> None:
    model = two_layers(4, 2)  # 8 of 16 weights in the hidden group
    graph = build_graph(model, torch.zeros(2, 2))
    with pytest.raises(UserError) as info:
        channel_masks(zero_scores(model), channel(0.5), graph)
    assert str(info.value) == (
        "sparsity.target: 0.5 is too high for channel structure "
        "(only 50.0% of the weights are in channel-prunable groups)"
    )
    assert channel_masks(zero_scores(model), channel(0.45), graph)["0.weight"].sum() == 2  # 1 of 4 rows


def test_an_untraceable_model_names_the_reason() -> None:
    class Branchy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(3, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x) if x.sum() > 0 else x

    graph = build_graph(Branchy(), torch.zeros(1, 3))
    scores = {"fc.weight": torch.ones(3, 3)}
    with pytest.raises(UserError, match=r"only 0\.0% of the weights .*; cannot trace: ") as info:
        channel_masks(scores, channel(0.5), graph)
    assert "\n" not in str(info.value)
    assert channel_masks(scores, channel(0.0), graph)["fc.weight"].all()  # nothing asked: dense


def alive_channels(graph: DependencyGraph, masks: dict[str, torch.Tensor], module: str) -> int:
    """Output rows of `module.weight` left in `masks`."""
    return len(rows_kept(masks[f"{module}.weight"]))


@pytest.mark.parametrize(("config", "causal"), [("BERT", False), ("LLAMA", True)])
def test_group_targets_remove_that_share_of_heads_and_ffn_neurons_in_every_layer(config, causal) -> None:
    pytest.importorskip("transformers", reason=HF_REASON)
    model = tiny(BERT if config == "BERT" else LLAMA, causal_lm=causal)
    graph = build_graph(model, tokens(2, 8)["input_ids"])
    scores = {
        n: torch.rand_like(p) for n, p in model.named_parameters() if n.endswith("weight") and p.dim() == 2
    }
    sparsity = channel(0.5, group_targets={"heads": 0.5, "ffn": 0.75})
    masks = channel_masks(scores, sparsity, graph)
    kinds = sorted(group_kind(graph.groups[i]) for i in usable_groups(graph, scores))
    assert kinds == ["ffn", "ffn", "heads", "heads"]
    for i in range(2):
        if config == "BERT":  # 4 heads of 8 -> 2; FFN 64 -> 16
            layer = f"bert.encoder.layer.{i}"
            heads, ffn = f"{layer}.attention.self.query", f"{layer}.intermediate.dense"
            assert alive_channels(graph, masks, heads) == 2 * 8
            assert alive_channels(graph, masks, f"{layer}.attention.self.value") == 2 * 8
        else:  # 2 key/value heads of 8 (2 query heads each) -> 1; gated FFN 64 -> 16
            layer = f"model.layers.{i}"
            heads, ffn = f"{layer}.self_attn.k_proj", f"{layer}.mlp.gate_proj"
            assert alive_channels(graph, masks, heads) == 8
            assert alive_channels(graph, masks, f"{layer}.self_attn.q_proj") == 16
            assert alive_channels(graph, masks, f"{layer}.mlp.up_proj") == 16
        assert alive_channels(graph, masks, ffn) == 16
    assert "classifier.weight" not in scores or masks["classifier.weight"].all()


def test_group_targets_leave_kinds_they_do_not_name_dense_and_keep_one_channel() -> None:
    model = two_layers(hidden=6, inputs=3)
    graph = build_graph(model, torch.zeros(2, 3))
    scores = {n: torch.rand_like(s) for n, s in zero_scores(model).items()}
    assert [group_kind(graph.groups[i]) for i in usable_groups(graph, scores)] == ["channels"]
    masks = channel_masks(scores, channel(0.0, group_targets={"channels": 0.5}), graph)
    assert len(rows_kept(masks["0.weight"])) == 3  # a traced MLP's neurons are "channels"
    masks = channel_masks(scores, channel(0.0, group_targets={"channels": 0.99}), graph)
    assert len(rows_kept(masks["0.weight"])) == 1  # never a whole group
    with pytest.raises(
        UserError,
        match=r"^sparsity.group_targets: the model has no prunable heads groups \(it has: channels\)$",
    ):
        channel_masks(scores, channel(0.5, group_targets={"heads": 0.5}), graph)


def test_a_schedule_on_its_way_scales_the_group_targets() -> None:
    full = channel(0.6, group_targets={"heads": 0.5, "ffn": 0.75})
    assert full.at(0.6).group_targets == {"heads": 0.5, "ffn": 0.75}
    half = full.at(0.3)
    assert half.target == 0.3 and half.group_targets == {"heads": 0.25, "ffn": 0.375}
    assert channel(0.0, group_targets={"heads": 0.5}).at(0.0).group_targets == {"heads": 0.5}
    assert full.group_targets == {"heads": 0.5, "ffn": 0.75}  # the section itself is unchanged
