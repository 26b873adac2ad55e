"""Helpers shared by the methods that prune trained weights (lth, gmp, magnitude_after_training).

Reference: Han et al. 2015, "Learning both Weights and Connections",
https://arxiv.org/abs/1506.02626 (magnitude pruning of trained weights)
"""

from __future__ import annotations

from typing import Any

import torch

from paiexport.inputs import Inputs
from paiexport.methods.base import SelectionContext
from paiexport.sparsity.collapse import check_collapse
from paiexport.sparsity.masks import get_masks, overall_sparsity, prunable_weights
from paiexport.sparsity.structure import select_structured
from paiexport.sparsity.types import Masks, SparsityConfig
from paiexport.training.loop import TrainResult, evaluate


def magnitude_masks(
    model: torch.nn.Module, sparsity: SparsityConfig, target: float, where: str, example: Inputs
) -> Masks:
    """Keep the largest |θ| at `target` sparsity; weights already pruned stay pruned.

    `example` is an input batch (channel structure traces the model with it). Checks the
    result for layer collapse (see `paiexport.sparsity.collapse`).
    """
    current = get_masks(model)
    scores = {}
    for name, w in prunable_weights(model, sparsity.exclude).items():
        score = w.detach().abs().double()
        if name in current:
            score = score.masked_fill(~current[name], float("-inf"))
        scores[name] = score
    # Through the recipe's structure, so channel / N:M apply to post-training methods too.
    masks = select_structured(scores, model, sparsity.at(target), example)
    check_collapse(masks, sparsity.allow_layer_collapse, where)
    return masks


def stage_record(ctx: SelectionContext, result: TrainResult) -> dict[str, Any]:
    """Sparsity and accuracy of the model a training stage left behind (its chosen checkpoint)."""
    device = str(next(ctx.model.parameters()).device)  # cuda:1 stays cuda:1
    task = ctx.data.task
    _, val = evaluate(ctx.model, ctx.data.val, device=device, task=task)
    _, test = evaluate(ctx.model, ctx.data.test, device=device, task=task)
    return {
        "sparsity": overall_sparsity(ctx.model, ctx.sparsity.exclude),
        "epochs": len(result.history),
        f"val_{task.short}": val[task.primary],
        f"test_{task.short}": test[task.primary],
    }
