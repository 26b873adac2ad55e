"""A multi-layer perceptron over the flattened input."""

from __future__ import annotations

from collections import OrderedDict
from math import prod

from pydantic import Field
from torch import nn

from paiexport.config import StrictModel
from paiexport.models.common import MAX_LAYERS, Width


class MLPArgs(StrictModel):
    hidden: list[Width] = Field(default_factory=lambda: [300, 100], min_length=1, max_length=MAX_LAYERS)


def build_mlp(args: MLPArgs, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    layers: dict[str, nn.Module] = {"flatten": nn.Flatten()}
    width = prod(input_shape)
    for i, h in enumerate(args.hidden, start=1):
        layers[f"fc{i}"], layers[f"relu{i}"] = nn.Linear(width, h), nn.ReLU()
        width = h
    layers["out"] = nn.Linear(width, num_classes)
    return nn.Sequential(OrderedDict(layers))
