"""Removing dead channels: which ones are dead, the smaller shapes, the folded constants, and
outputs equal to the masked model's."""

from __future__ import annotations

import copy

import pytest
import torch
from nets import TinyRes, randomize_constants
from torch import nn

from paiexport.sparsity.depgraph import DependencyGraph, build_graph
from paiexport.sparsity.shrink import AddConstant, ShrinkResult, dead_channels, shrink_model


def index_of(graph: DependencyGraph, module: str) -> int:
    return next(
        i
        for i, g in enumerate(graph.groups)
        if any(m.module == module and m.role == "out" for m in g.members)
    )


def shrunk(model: nn.Module, example: torch.Tensor) -> ShrinkResult:
    """`shrink_model` of `model` (eval) whose outputs equal the model's on fresh inputs."""
    model.eval()
    result = shrink_model(model, build_graph(model, example), example)
    x = torch.randn(5, *example.shape[1:], generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.allclose(result.model(x), model(x), atol=1e-6)
    return result


def unwrapped(module: nn.Module) -> nn.Module:
    """The layer itself where `shrink_model` put it in Sequential(layer, AddConstant)."""
    return module[0] if isinstance(module, nn.Sequential) else module


def mlp() -> nn.Sequential:
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))


def test_dead_channels_have_all_zero_rows_or_are_never_read() -> None:
    model = mlp()
    graph = build_graph(model, torch.zeros(1, 3))
    hidden = index_of(graph, "0")
    modules = dict(model.named_modules())
    assert dead_channels(graph, modules) == {}
    with torch.no_grad():
        model[0].weight[1] = 0  # producer row: dead
        model[2].weight[:, 3] = 0  # every consumer column: unread
    found = dead_channels(graph, modules)
    assert list(found) == [hidden] and found[hidden].tolist() == [False, True, False, True]
    with torch.no_grad():
        model[0].weight.zero_()
    assert dead_channels(graph, modules)[hidden].tolist() == [False, True, True, True]  # one stays


def conv_bn_chain() -> nn.Sequential:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 3, 1)
    )
    randomize_constants(model, torch.Generator().manual_seed(0))
    return model.eval()


def test_a_conv_bn_conv_chain_loses_the_dead_channels_everywhere() -> None:
    model = conv_bn_chain()
    with torch.no_grad():
        model[0].weight[[1, 3]] = 0
    carried = torch.relu(model[1](torch.zeros(1, 4, 1, 1))).flatten()  # what channels 1, 3 still carry
    result = shrunk(model, torch.randn(2, 2, 5, 5))
    small = result.model
    assert small[0].weight.shape == (2, 2, 3, 3) and small[0].out_channels == 2
    assert small[1].num_features == 2 and small[1].running_mean.shape == small[1].weight.shape == (2,)
    assert small[3].weight.shape == (3, 2, 1, 1) and small[3].in_channels == 2
    assert result.removed == {0: 2}
    assert (result.params_before, result.params_after) == (72 + 8 + 12 + 3, 36 + 4 + 6 + 3)
    folded = model[3].bias + model[3].weight[:, [1, 3], 0, 0] @ carried[[1, 3]]
    assert torch.allclose(small[3].bias, folded, atol=1e-6)  # constant everywhere: into the bias
    assert not any(isinstance(m, AddConstant) for m in small.modules())
    assert model[0].weight.shape == (4, 2, 3, 3)  # the model given is left as it was


def test_a_constant_seen_through_padding_is_added_after_the_consumer() -> None:
    model = nn.Sequential(nn.Conv1d(1, 2, 3, padding=1), nn.ReLU(), nn.Conv1d(2, 2, 3, padding=1))
    with torch.no_grad():
        model[0].weight[1] = 0
        model[0].bias.copy_(torch.tensor([0.0, 2.0]))  # channel 1 carries relu(2) = 2
        model[2].weight[:, 1] = 1.0
    bias = model[2].bias.detach().clone()
    small = shrunk(model, torch.randn(2, 1, 4)).model
    consumer, added = small[2]
    assert isinstance(added, AddConstant) and consumer.weight.shape == (2, 1, 3)
    # 2 x (1 + 1 + 1) inside, one tap on the zero padding at either end
    assert added.value.tolist() == [[4.0, 6.0, 6.0, 4.0], [4.0, 6.0, 6.0, 4.0]]
    assert torch.equal(consumer.bias, bias)


def test_residual_channels_go_only_when_every_producer_row_is_zero() -> None:
    torch.manual_seed(0)
    model = TinyRes().eval()
    randomize_constants(model, torch.Generator().manual_seed(0))
    with torch.no_grad():
        model.conv0.weight[[2, 5]] = 0
    example = torch.randn(2, 2, 6, 6)
    assert shrunk(copy.deepcopy(model), example).model.conv0.out_channels == 8  # conv2 still writes them
    with torch.no_grad():
        model.conv2.weight[[2, 5]] = 0
    small = shrunk(model, example).model
    conv1, fc = unwrapped(small.conv1), unwrapped(small.fc)  # constants seen through padding
    assert [small.conv0.out_channels, small.bn0.num_features, conv1.in_channels] == [6, 6, 6]
    assert [small.conv2.out_channels, small.bn2.num_features, fc.in_features] == [6, 6, 6]
    assert conv1.out_channels == 4  # the inner group keeps its channels


class Concat(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = nn.Conv2d(2, 3, 1), nn.Conv2d(2, 5, 1), nn.Conv2d(8, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c(torch.cat([self.a(x), self.b(x)], dim=1))


def test_a_concat_consumer_loses_the_columns_at_each_producers_offset() -> None:
    model = Concat()
    with torch.no_grad():
        model.a.weight[1] = 0
        model.b.weight[4] = 0
    kept_columns = model.c.weight[:, [0, 2, 3, 4, 5, 6]].detach().clone()
    small = shrunk(model, torch.randn(2, 2, 3, 3)).model
    assert (small.a.out_channels, small.b.out_channels, small.c.in_channels) == (2, 4, 6)
    assert torch.equal(small.c.weight, kept_columns)


def test_a_depthwise_conv_follows_its_channels() -> None:
    model = nn.Sequential(nn.Conv2d(1, 3, 1), nn.Conv2d(3, 3, 3, padding=1, groups=3), nn.Conv2d(3, 2, 1))
    with torch.no_grad():
        model[0].weight[1] = 0
    small = shrunk(model, torch.randn(2, 1, 4, 4)).model
    dw = unwrapped(small[1])
    assert (dw.in_channels, dw.out_channels, dw.groups, tuple(dw.weight.shape)) == (2, 2, 2, (2, 1, 3, 3))
    assert unwrapped(small[2]).weight.shape == (2, 2, 1, 1)


def test_every_group_keeps_one_channel() -> None:
    model = mlp()
    with torch.no_grad():
        model[0].weight.zero_()
        model[2].weight.zero_()
    result = shrunk(model, torch.randn(2, 3))
    assert [m.out_features for m in result.model if isinstance(m, nn.Linear)] == [1, 1, 2]
    assert result.removed == {0: 3, 1: 2}


@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_encoder_mlp_units_fold_their_constant_into_linear2(activation: str) -> None:
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(8, 2, 6, dropout=0.0, batch_first=True, activation=activation)
    model = nn.Sequential(nn.Linear(3, 8), layer, nn.Linear(8, 2))
    with torch.no_grad():
        layer.linear1.weight[[0, 4]] = 0
        layer.linear1.bias[[0, 4]] = torch.tensor([0.5, -0.3])
    small = shrunk(model, torch.randn(2, 5, 3)).model[1]
    assert small.linear1.weight.shape == (4, 8) and small.linear2.weight.shape == (8, 4)
    assert isinstance(small.self_attn, nn.MultiheadAttention)  # no head was dead
