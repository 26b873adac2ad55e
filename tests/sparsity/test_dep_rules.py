"""How each traced op moves, ties or blocks channels: the exact groups of small models."""

from __future__ import annotations

import torch
from nets import SEResNet
from torch import nn

from paiexport.sparsity.depgraph import build_graph


def groups(model: nn.Module, example: torch.Tensor) -> set[tuple]:
    """Every group as (members as (module, role, offset, per), size, prunable, note)."""
    graph = build_graph(model, example)
    assert graph.notes == []
    return {
        (frozenset((m.module, m.role, m.offset, m.per) for m in g.members), g.size, g.prunable, g.note)
        for g in graph.groups
    }


def test_conv_batchnorm_conv_chain_is_one_group() -> None:
    chain = nn.Sequential(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 3, 1))
    assert groups(chain, torch.zeros(1, 2, 5, 5)) == {
        (frozenset({("0", "out", 0, 1), ("1", "norm", 0, 1), ("3", "in", 0, 1)}), 4, True, ""),
        (frozenset({("3", "out", 0, 1)}), 3, False, "model output"),
    }
    member = next(m for g in build_graph(chain, torch.zeros(1, 2, 5, 5)).groups for m in g.members)
    assert (member.param, member.dim) == ("weight", 0)


class Added(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = nn.Conv2d(2, 3, 1), nn.Conv2d(2, 3, 1), nn.Conv2d(3, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c(self.a(x) + self.b(x))


def test_a_residual_add_ties_both_producers_into_one_group() -> None:
    assert groups(Added(), torch.zeros(1, 2, 4, 4)) == {
        (frozenset({("a", "out", 0, 1), ("b", "out", 0, 1), ("c", "in", 0, 1)}), 3, True, ""),
        (frozenset({("c", "out", 0, 1)}), 4, False, "model output"),
    }


class AddInput(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.c = nn.Conv2d(2, 2, 1), nn.Conv2d(2, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c(self.a(x) + x)


def test_adding_the_model_input_blocks_the_channels() -> None:
    found = groups(AddInput(), torch.zeros(1, 2, 4, 4))
    assert (
        frozenset({("a", "out", 0, 1), ("c", "in", 0, 1)}),
        2,
        False,
        "add with a non-prunable tensor",
    ) in found


class AddMismatch(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.b2 = nn.Conv2d(2, 4, 1), nn.Conv2d(2, 2, 1), nn.Conv2d(2, 2, 1)
        self.c = nn.Conv2d(4, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c(self.a(x) + torch.cat([self.b(x), self.b2(x)], 1))


def test_adding_tensors_of_different_layouts_blocks_all_of_them() -> None:
    why = "add of tensors with different channel layouts"
    found = groups(AddMismatch(), torch.zeros(1, 2, 2, 2))
    assert {(next(iter(m))[0], size, ok, note) for m, size, ok, note in found} == {
        ("a", 4, False, why),
        ("b", 2, False, why),
        ("b2", 2, False, why),
        ("c", 1, False, "model output"),
    }


class Concat(nn.Module):
    def __init__(self, with_input: bool = False) -> None:
        super().__init__()
        self.with_input = with_input
        self.a, self.b = nn.Conv2d(2, 3, 1), nn.Conv2d(2, 5, 1)
        self.c = nn.Conv2d(5 if with_input else 8, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first = x if self.with_input else self.a(x)
        second = self.a(x) if self.with_input else self.b(x)
        return self.c(torch.cat([first, second], dim=1))


def test_a_channel_concat_keeps_each_producer_at_its_offset() -> None:
    assert groups(Concat(), torch.zeros(1, 2, 4, 4)) == {
        (frozenset({("a", "out", 0, 1), ("c", "in", 0, 1)}), 3, True, ""),
        (frozenset({("b", "out", 0, 1), ("c", "in", 3, 1)}), 5, True, ""),
        (frozenset({("c", "out", 0, 1)}), 4, False, "model output"),
    }
    # the model input's 2 channels come first: the consumer reads a's channels from column 2
    assert (frozenset({("a", "out", 0, 1), ("c", "in", 2, 1)}), 3, True, "") in groups(
        Concat(with_input=True), torch.zeros(1, 2, 4, 4)
    )


def test_flatten_into_a_linear_makes_a_channel_a_block_of_positions() -> None:
    model = nn.Sequential(nn.Conv2d(1, 3, 1), nn.Flatten(), nn.Linear(3 * 2 * 2, 2))
    assert (frozenset({("0", "out", 0, 1), ("2", "in", 0, 4)}), 3, True, "") in groups(
        model, torch.zeros(1, 1, 2, 2)
    )


class ConcatFlat(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.fc = nn.Conv2d(1, 3, 1), nn.Conv2d(1, 5, 1), nn.Linear(8 * 2 * 2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(torch.cat([self.a(x), self.b(x)], dim=1), 1))


def test_a_flattened_concat_reads_each_producer_after_the_previous_blocks() -> None:
    found = groups(ConcatFlat(), torch.zeros(1, 1, 2, 2))
    assert (frozenset({("a", "out", 0, 1), ("fc", "in", 0, 4)}), 3, True, "") in found
    assert (frozenset({("b", "out", 0, 1), ("fc", "in", 3 * 4, 4)}), 5, True, "") in found


class Viewed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.fc = nn.Conv2d(1, 3, 1), nn.Linear(12, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.a(x)
        return self.fc(y.view(y.size(0), -1))  # y.size(0) is a python int: no channels


def test_a_view_to_batch_by_features_is_a_flatten() -> None:
    assert (frozenset({("a", "out", 0, 1), ("fc", "in", 0, 4)}), 3, True, "") in groups(
        Viewed(), torch.zeros(1, 1, 2, 2)
    )


def test_a_depthwise_conv_keeps_channel_i_as_channel_i() -> None:
    model = nn.Sequential(nn.Conv2d(1, 3, 1), nn.Conv2d(3, 3, 3, groups=3), nn.Conv2d(3, 2, 1))
    found = groups(model, torch.zeros(1, 1, 5, 5))
    assert (frozenset({("0", "out", 0, 1), ("1", "dw", 0, 1), ("2", "in", 0, 1)}), 3, True, "") in found


class Reduced(nn.Module):
    def __init__(self, dims: object, keepdim: bool = False) -> None:
        super().__init__()
        self.dims, self.keepdim = dims, keepdim
        self.a = nn.Conv2d(2, 3, 1)
        self.fc = nn.Conv2d(3, 2, 1) if keepdim else nn.Linear(4 if dims == 1 else 3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.a(x).mean(dim=self.dims, keepdim=self.keepdim)
        return self.fc(y.flatten(1) if self.dims == 1 else y)


def test_spatial_means_keep_the_channels_and_a_channel_mean_blocks_them() -> None:
    example = torch.zeros(1, 2, 2, 2)
    assert (frozenset({("a", "out", 0, 1), ("fc", "in", 0, 1)}), 3, True, "") in groups(
        Reduced((2, 3)), example
    )
    kept = groups(Reduced((2, 3), keepdim=True), example)
    assert (frozenset({("a", "out", 0, 1), ("fc", "in", 0, 1)}), 3, True, "") in kept
    assert (frozenset({("a", "out", 0, 1)}), 3, False, "unsupported op mean") in groups(Reduced(1), example)


def test_a_linear_over_a_sequence_consumes_the_last_dim() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    assert (frozenset({("0", "out", 0, 1), ("2", "in", 0, 1)}), 4, True, "") in groups(
        model, torch.zeros(1, 5, 3)
    )


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
