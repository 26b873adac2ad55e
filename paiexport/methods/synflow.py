"""SynFlow: data-free, iterative conservation of synaptic flow.

Every parameter and buffer is replaced by its absolute value, an all-ones input goes
through the network (BatchNorm in eval mode), R = sum of the outputs, and the score
is |θ ⊙ ∂R/∂θ|. The pass runs through `torch.func.functional_call` on absolute-valued
float64 copies, so the model's own weights (and signs) are never modified: "signs
restored afterwards" holds trivially, and float64 keeps R finite at 99.9% sparsity.
Applied over `rounds` (default 100) with the exponential schedule d^(k/n), which is
what avoids layer collapse.

Reference: Tanaka, Kunin, Yamins & Ganguli 2020, "Pruning neural networks without any
data by iteratively conserving synaptic flow", https://arxiv.org/abs/2006.05467
"""

from typing import Literal

import torch
from pydantic import Field
from torch.func import functional_call

from paiexport.methods.base import SelectionContext
from paiexport.methods.score import ScoreConfig, ScoreMethod


class SynflowConfig(ScoreConfig):
    name: Literal["synflow"] = "synflow"
    rounds: int = Field(default=100, ge=1, description="pruning rounds, rescoring after each")


class Synflow(ScoreMethod):
    config_class = SynflowConfig

    def scores(self, ctx: SelectionContext) -> dict[str, torch.Tensor]:
        model = ctx.model
        prunable = ctx.prunable()
        names = {id(w): n for n, w in prunable.items()}
        state, weights = {}, {}
        seen: set[int] = set()  # a tensor tied between modules goes in once (functional_call ties it)
        for key, value in model.state_dict(keep_vars=True).items():
            if id(value) in seen:
                continue
            seen.add(id(value))
            if not value.is_floating_point():
                state[key] = value
                continue
            state[key] = value.detach().abs().double().requires_grad_(id(value) in names)
            if id(value) in names:
                weights[names[id(value)]] = state[key]
        device = next(iter(prunable.values())).device
        ones = torch.ones(1, *ctx.data.input_shape, dtype=torch.float64, device=device)
        was_training = model.training
        model.eval()  # BatchNorm uses its (absolute) running statistics, as in the paper
        try:
            flow = functional_call(model, state, (ones,)).sum()
        finally:
            model.train(was_training)
        grads = torch.autograd.grad(flow, list(weights.values()))
        return {n: (w * g).detach().abs() for (n, w), g in zip(weights.items(), grads, strict=True)}
