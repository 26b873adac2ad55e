"""LeNet-5 for images of shape (C, H, W)."""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from paiexport.config import StrictModel
from paiexport.errors import UserError
from paiexport.models.common import flat_features


class LeNet5Args(StrictModel):
    pass


def build_lenet5(args: LeNet5Args, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """LeNet-5 with 'same' padding on both convs so it also fits 8x8 digits."""
    if len(input_shape) != 3:
        raise UserError(f"model.name: lenet5 needs images (C, H, W), got input shape {input_shape}")
    layers: dict[str, nn.Module] = {
        "conv1": nn.Conv2d(input_shape[0], 6, 5, padding=2),
        "relu1": nn.ReLU(),
        "pool1": nn.MaxPool2d(2),
        "conv2": nn.Conv2d(6, 16, 5, padding=2),
        "relu2": nn.ReLU(),
        "pool2": nn.MaxPool2d(2),
        "flatten": nn.Flatten(),
    }
    flat = flat_features(nn.Sequential(*layers.values()), input_shape)
    layers.update(
        {
            "fc1": nn.Linear(flat, 120),
            "relu3": nn.ReLU(),
            "fc2": nn.Linear(120, 84),
            "relu4": nn.ReLU(),
            "out": nn.Linear(84, num_classes),
        }
    )
    return nn.Sequential(OrderedDict(layers))
