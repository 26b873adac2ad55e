"""A small U-Net: two downsampling stages (max-pool), two upsampling stages (nearest
neighbour), each decoder stage concatenating the encoder's features of the same size.

Every op is one that channel pruning follows (docs/deployment-and-speed.md): a removed
encoder channel is removed from the decoder convolution that reads the concatenation too,
so the compact export is a physically narrower U-Net.
"""

from __future__ import annotations

import torch
from torch import nn


def block(cin: int, cout: int) -> nn.Sequential:
    """Two 3x3 convolutions, each with batch norm and ReLU."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(),
    )


class UNet(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, width: int) -> None:
        super().__init__()
        self.enc1 = block(in_channels, width)
        self.enc2 = block(width, 2 * width)
        self.middle = block(2 * width, 4 * width)
        self.dec2 = block(4 * width + 2 * width, 2 * width)
        self.dec1 = block(2 * width + width, width)
        self.head = nn.Conv2d(width, num_classes, 1)
        self.down = nn.MaxPool2d(2)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(self.down(e1))
        m = self.middle(self.down(e2))
        d2 = self.dec2(torch.cat([self.up(m), e2], dim=1))
        d1 = self.dec1(torch.cat([self.up(d2), e1], dim=1))
        return self.head(d1)


def unet(num_classes: int, in_channels: int, width: int = 16) -> nn.Module:
    """Logits (N, num_classes, H, W) for images (N, in_channels, H, W), H and W divisible by 4."""
    return UNet(in_channels, num_classes, width)
