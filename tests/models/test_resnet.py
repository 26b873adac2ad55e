"""The bundled CIFAR-style ResNet-20: three stages, shortcuts where the shape changes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from paiexport.errors import UserError
from paiexport.models.resnet import ResNet20Args, build_resnet20


def test_the_default_is_resnet20_with_its_known_parameter_count():
    model = build_resnet20(ResNet20Args(), (3, 32, 32), 10)
    assert len(model.blocks) == 9
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 1 + 9 * 2 + 2  # stem, two per block, two projection shortcuts
    assert sum(p.numel() for p in model.parameters()) == 272_474  # He et al.'s 0.27M


def test_stages_double_the_width_and_halve_the_size():
    model = build_resnet20(ResNet20Args(width=4, blocks_per_stage=1), (3, 16, 16), 5)
    first, second, third = model.blocks
    assert isinstance(first.shortcut, nn.Identity)
    assert (second.conv1.stride, second.conv1.out_channels, third.conv1.out_channels) == ((2, 2), 8, 16)
    assert second.shortcut[0].kernel_size == (1, 1) and second.shortcut[0].stride == (2, 2)
    assert model.fc.in_features == 16 and model.eval()(torch.zeros(2, 3, 16, 16)).shape == (2, 5)


def test_signals_are_refused_naming_the_model():
    with pytest.raises(UserError, match=r"^model.name: resnet20 needs images \(C, H, W\), got \(1, 40\)$"):
        build_resnet20(ResNet20Args(), (1, 40), 10)
