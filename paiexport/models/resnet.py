"""CIFAR-style ResNet-20 (He et al. 2016) for images of shape (C, H, W)."""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from paiexport.config import StrictModel
from paiexport.errors import UserError
from paiexport.models.common import MAX_LAYERS, MAX_WIDTH


class ResNet20Args(StrictModel):
    width: int = Field(default=16, ge=1, le=MAX_WIDTH // 4)  # the last stage has 4x width
    blocks_per_stage: int = Field(default=3, ge=1, le=MAX_LAYERS)


class BasicBlock(nn.Module):
    """Two 3x3 convs with BN; a 1x1 conv + BN shortcut when the shape changes."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm2d(out_ch)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """CIFAR-style ResNet (He et al. 2016): 3 stages, `blocks_per_stage` blocks each."""

    def __init__(self, args: ResNet20Args, in_channels: int, num_classes: int) -> None:
        super().__init__()
        w = args.width
        self.conv1 = nn.Conv2d(in_channels, w, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        blocks: list[nn.Module] = []
        in_ch = w
        for stage, out_ch in enumerate((w, 2 * w, 4 * w)):
            for b in range(args.blocks_per_stage):
                stride = 2 if stage > 0 and b == 0 else 1
                blocks.append(BasicBlock(in_ch, out_ch, stride))
                in_ch = out_ch
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(in_ch, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.blocks(torch.relu(self.bn1(self.conv1(x))))
        return self.fc(torch.flatten(torch.mean(out, dim=(2, 3), keepdim=True), 1))


def build_resnet20(args: ResNet20Args, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    if len(input_shape) != 3:
        raise UserError(f"model.name: resnet20 needs images (C, H, W), got {input_shape}")
    return ResNet(args, input_shape[0], num_classes)
