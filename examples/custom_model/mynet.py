"""A network of your own for paiexport: any function or class that returns an nn.Module classifier.

paiexport passes `num_classes`, `in_channels` and `input_shape` from the data when the
callable takes them and the recipe's `model.args` does not give them.
"""

from __future__ import annotations

import torch
from torch import nn


class Residual1d(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm1d(channels)
        self.conv2 = nn.Conv1d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm1d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))))


def resnet1d(num_classes: int, in_channels: int, width: int = 32, blocks: int = 2) -> nn.Module:
    """A small residual network for 1-D signals (MNIST-1D)."""
    return nn.Sequential(
        nn.Conv1d(in_channels, width, 5, padding=2, bias=False),
        nn.BatchNorm1d(width),
        nn.ReLU(),
        *[Residual1d(width) for _ in range(blocks)],
        nn.AdaptiveAvgPool1d(1),
        nn.Flatten(),
        nn.Linear(width, num_classes),
    )
