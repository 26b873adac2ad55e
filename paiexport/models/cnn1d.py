"""A 1-D convolutional network for signals of shape (C, L), e.g. MNIST-1D."""

from __future__ import annotations

from collections import OrderedDict

from pydantic import Field
from torch import nn

from paiexport.config import StrictModel
from paiexport.errors import UserError
from paiexport.models.common import MAX_LAYERS, MAX_WIDTH, Width, flat_features


class CNN1dArgs(StrictModel):
    channels: list[Width] = Field(default_factory=lambda: [64, 64, 64], min_length=1, max_length=MAX_LAYERS)
    hidden: int = Field(default=256, ge=1, le=MAX_WIDTH)


def build_cnn1d(args: CNN1dArgs, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Conv-BN-ReLU stack for 1-D signals (MNIST-1D); the first conv keeps the length."""
    if len(input_shape) != 2:
        raise UserError(f"model.name: cnn1d needs 1-D signals (C, L), got input shape {input_shape}")
    layers: dict[str, nn.Module] = {}
    in_ch = input_shape[0]
    for i, out_ch in enumerate(args.channels, start=1):
        stride, kernel = (1, 5) if i == 1 else (2, 3)
        layers[f"conv{i}"] = nn.Conv1d(in_ch, out_ch, kernel, stride, padding=kernel // 2, bias=False)
        layers[f"bn{i}"], layers[f"relu{i}"] = nn.BatchNorm1d(out_ch), nn.ReLU()
        in_ch = out_ch
    layers["flatten"] = nn.Flatten()
    flat = flat_features(nn.Sequential(*layers.values()), input_shape)
    layers["fc1"], layers["relu_fc1"] = nn.Linear(flat, args.hidden), nn.ReLU()
    layers["out"] = nn.Linear(args.hidden, num_classes)
    return nn.Sequential(OrderedDict(layers))
