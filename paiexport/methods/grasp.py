"""GraSP: keep the weights whose removal would hurt the gradient flow most.

The paper's score is S(−θ) = −θ ⊙ Hg, with g the gradient of the loss on logits
divided by a temperature T (= 200) and Hg a Hessian-gradient product; GraSP then
*removes the highest* S (Wang et al. 2020, Algorithm 1; the official code keeps
`score <= threshold`). Removing the highest −θ⊙Hg is keeping the highest θ⊙Hg, so
`scores` returns θ ⊙ Hg (higher = keep, like every other criterion here) and the
shared allocation keeps the top of it. Hg is computed exactly by double backward:
g = Σ_b ∇L_b (held constant), Hg = ∇_θ (Σ_b ∇L_b · g). The fused kernels of
`scaled_dot_product_attention` (Hugging Face attention, on CPU and GPU) have no double
backward, so scoring runs it on its math kernel (the same function, differentiable twice).

Reference: Wang, Zhang & Grosse 2020, "Picking Winning Tickets Before Training by
Preserving Gradient Flow", https://arxiv.org/abs/2002.07376
"""

from typing import Literal

import torch
from pydantic import Field
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from paiexport.inputs import Inputs, call_model
from paiexport.methods.base import SelectionContext, preserved_state
from paiexport.methods.score import ScoreConfig, ScoreMethod
from paiexport.tasks import Task


class GraspConfig(ScoreConfig):
    name: Literal["grasp"] = "grasp"
    batches: int = Field(default=1, ge=1, description="training batches g and Hg are summed over")
    temperature: float = Field(default=200.0, gt=0.0, description="logits are divided by it (paper: 200)")


def _loss(model: nn.Module, task: Task, x: Inputs, y: torch.Tensor, temperature: float) -> torch.Tensor:
    """The task's loss on the outputs divided by the temperature (the paper's logits / T)."""
    return task.loss(task.pick(call_model(model, x)) / temperature, y)


class Grasp(ScoreMethod):
    config_class = GraspConfig

    def scores(self, ctx: SelectionContext) -> dict[str, torch.Tensor]:
        cfg: GraspConfig = self.config
        weights = ctx.prunable()
        names, params = list(weights), list(weights.values())
        with preserved_state(ctx.model) as model, sdpa_kernel([SDPBackend.MATH]):
            model.train()
            batches = ctx.train_batches(cfg.batches)
            g = [torch.zeros_like(p) for p in params]
            for x, y in batches:
                grads = torch.autograd.grad(_loss(model, ctx.data.task, x, y, cfg.temperature), params)
                for acc, grad in zip(g, grads, strict=True):
                    acc += grad
            hg = [torch.zeros_like(p) for p in params]
            for x, y in batches:
                grads = torch.autograd.grad(
                    _loss(model, ctx.data.task, x, y, cfg.temperature), params, create_graph=True
                )
                dot = sum((gr * gc).sum() for gr, gc in zip(grads, g, strict=True))
                for acc, h in zip(hg, torch.autograd.grad(dot, params), strict=True):
                    acc += h
        return {n: (p.detach() * h).detach() for n, p, h in zip(names, params, hg, strict=True)}
