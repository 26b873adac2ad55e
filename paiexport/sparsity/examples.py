"""A model's example input as the graph and the shrink take it: one tensor, a tuple of positional
inputs, or a dict of named ones (`input_ids`, `attention_mask`, ...)."""

from __future__ import annotations

import torch
from torch import nn

Example = torch.Tensor | tuple[torch.Tensor, ...] | dict[str, torch.Tensor]


def forward(model: nn.Module, example: Example) -> object:
    """`model` called on `example`."""
    if isinstance(example, dict):
        return model(**example)
    if isinstance(example, tuple | list):
        return model(*example)
    return model(example)


def to_device(example: Example, device: torch.device | str) -> Example:
    """`example` with every tensor on `device`."""
    if isinstance(example, dict):
        return {k: v.to(device) for k, v in example.items()}
    if isinstance(example, tuple | list):
        return tuple(v.to(device) for v in example)
    return example.to(device)


def first_rows(example: Example, n: int) -> Example:
    """The first `n` samples of every input of `example`."""
    if isinstance(example, dict):
        return {k: v[:n] for k, v in example.items()}
    if isinstance(example, tuple | list):
        return tuple(v[:n] for v in example)
    return example[:n]
