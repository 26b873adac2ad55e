"""Which traced torch ops keep channels as they are (element-wise), act per channel over space
(pooling, resizing), join tensors element-wise or reduce; `dep_rules.py` applies them."""

from __future__ import annotations

import operator

import torch
from torch import nn

_F = nn.functional
ELEMENTWISE_MODULES = (
    nn.ReLU,
    nn.ReLU6,
    nn.GELU,
    nn.SiLU,
    nn.Sigmoid,
    nn.Tanh,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.LeakyReLU,
    nn.ELU,
    nn.Mish,
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Identity,
)
SPATIAL_MODULES = (
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d,
    nn.Upsample,
)
ELEMENTWISE_FUNCTIONS = {
    torch.relu,
    _F.relu,
    _F.relu6,
    _F.gelu,
    _F.silu,
    torch.sigmoid,
    _F.sigmoid,
    torch.tanh,
    _F.hardswish,
    _F.hardsigmoid,
    _F.leaky_relu,
    _F.elu,
    _F.dropout,
    _F.mish,
}
ELEMENTWISE_METHODS = {"relu", "relu_", "sigmoid", "tanh", "contiguous", "clone", "detach"}
SPATIAL_FUNCTIONS = {
    _F.max_pool1d,
    _F.max_pool2d,
    _F.avg_pool1d,
    _F.avg_pool2d,
    _F.adaptive_avg_pool1d,
    _F.adaptive_avg_pool2d,
    _F.adaptive_max_pool2d,
    _F.interpolate,
}
JOIN_FUNCTIONS = {operator.add, operator.iadd, operator.sub, operator.isub, operator.mul, operator.imul}
JOIN_FUNCTIONS |= {torch.add, torch.sub, torch.mul}
JOIN_METHODS = {"add", "add_", "sub", "sub_", "mul", "mul_"}
REDUCE = {torch.mean, torch.sum, torch.amax, "mean", "sum", "amax"}
