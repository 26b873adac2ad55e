"""Layer collapse: a layer (or an output channel) left with no weights at all.

A fully pruned layer disconnects the network: its output is constant, so nothing
before it can learn. Single-shot criteria at high sparsity with `global` allocation
are prone to it (Tanaka et al. 2020 make avoiding it SynFlow's goal), so every
selection is checked: a collapsed layer fails the run unless the recipe sets
`sparsity.allow_layer_collapse: true`; collapsed layers and output channels are
always reported (`layer_collapse` in report.json).

Reference: Tanaka et al. 2020, "Pruning neural networks without any data by
iteratively conserving synaptic flow", https://arxiv.org/abs/2006.05467
"""

from __future__ import annotations

from typing import Any

import torch

from paiexport.errors import UserError
from paiexport.sparsity.types import Masks


def empty_output_channels(mask: torch.Tensor) -> list[int]:
    """Indices along dim 0 (output features / channels) whose mask keeps nothing."""
    kept_per_row = mask.reshape(mask.shape[0], -1).sum(dim=1)
    return [int(i) for i in torch.nonzero(kept_per_row == 0).flatten()]


def find_collapse(masks: Masks) -> dict[str, Any]:
    """`{"layers": [fully pruned layers], "output_channels": {layer: [empty channel indices]}}`.

    `output_channels` lists layers that keep some weights but lose whole output channels;
    a fully pruned layer is listed under `layers` only.
    """
    layers = [name for name, mask in masks.items() if not bool(mask.any())]
    channels = {
        name: empty
        for name, mask in masks.items()
        if name not in layers and (empty := empty_output_channels(mask.bool()))
    }
    return {"layers": layers, "output_channels": channels}


def check_collapse(masks: Masks, allow: bool, where: str = "mask selection") -> dict[str, Any]:
    """`find_collapse`, raising a one-line UserError on a fully pruned layer unless allowed."""
    found = find_collapse(masks)
    if found["layers"] and not allow:
        raise UserError(
            f"sparsity.allow_layer_collapse: {where} pruned every weight of "
            f"{', '.join(found['layers'])} (layer collapse); lower sparsity.target, use another "
            "method or distribution, or set sparsity.allow_layer_collapse: true to train anyway"
        )
    return found
