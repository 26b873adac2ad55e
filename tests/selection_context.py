"""A two-layer ReLU net with hand-set weights, and the SelectionContext a method selects in."""

import torch
from torch import nn

from paiexport.data import DataSplits, Split
from paiexport.methods import SelectionContext
from paiexport.sparsity.types import SparsityConfig


def two_layer_net() -> nn.Sequential:
    net = nn.Sequential(nn.Linear(3, 2, bias=False), nn.ReLU(), nn.Linear(2, 2, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[0.5, -1.0, 0.25], [1.0, 0.5, -0.5]]))
        net[2].weight.copy_(torch.tensor([[1.0, -2.0], [0.5, 0.75]]))
    return net


def context(net: nn.Module, x: torch.Tensor, y: torch.Tensor, target: float = 0.5) -> SelectionContext:
    split = Split(x, y)
    data = DataSplits(split, split, split, input_shape=(x.shape[1],), num_classes=2)
    return SelectionContext(
        net, data, SparsityConfig(target=target, distribution="uniform"), batch_size=len(y)
    )
