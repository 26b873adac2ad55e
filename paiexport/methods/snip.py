"""SNIP: connection sensitivity |θ ⊙ ∂L/∂θ| on a few training batches at initialization.

Reference: Lee et al. 2019, "SNIP: Single-shot Network Pruning based on Connection
Sensitivity", https://arxiv.org/abs/1810.02340
"""

from typing import Literal

import torch
from pydantic import Field

from paiexport.inputs import call_model
from paiexport.methods.base import SelectionContext, preserved_state
from paiexport.methods.score import ScoreConfig, ScoreMethod


class SnipConfig(ScoreConfig):
    name: Literal["snip"] = "snip"
    batches: int = Field(default=1, ge=1, description="training batches the gradient is summed over")


class Snip(ScoreMethod):
    config_class = SnipConfig

    def scores(self, ctx: SelectionContext) -> dict[str, torch.Tensor]:
        weights = ctx.prunable()
        grads = {n: torch.zeros_like(w) for n, w in weights.items()}
        task = ctx.data.task
        with preserved_state(ctx.model) as model:
            model.train()
            for x, y in ctx.train_batches(self.config.batches):
                model.zero_grad(set_to_none=True)
                task.loss(task.pick(call_model(model, x)), y).backward()
                for n, w in weights.items():
                    grads[n] += w.grad
        return {n: (w.detach() * grads[n]).abs() for n, w in weights.items()}
