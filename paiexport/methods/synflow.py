"""SynFlow: data-free, iterative conservation of synaptic flow.

Every parameter and buffer is replaced by its absolute value, an all-ones input goes
through the network (BatchNorm in eval mode), R = sum of the output the task reads, and the score
is |θ ⊙ ∂R/∂θ|. The pass runs through `torch.func.functional_call` on absolute-valued
float64 copies, so the model's own weights (and signs) are never modified: "signs
restored afterwards" holds trivially, and float64 keeps R finite at 99.9% sparsity.
Applied over `rounds` (default 100) with the exponential schedule d^(k/n), which is
what avoids layer collapse.

Integer inputs (token ids, attention masks): no flow passes through a table lookup, so it
starts where the continuous network does. Every `nn.Embedding` / `nn.EmbeddingBag` reads id 0
(valid in any table) and outputs all ones, float64: the paper's all-ones input one layer in
(a lookup table is neither a layer the flow multiplies through nor prunable). Integer inputs
themselves are ones (a mask then keeps every position); float inputs are ones as always;
several inputs go in as the data gives them (a tuple or a dict).

Two layers would stop the flow of a transformer (BERT: every score exactly zero), so the pass
linearizes them, as ReLU is linear on the paper's all-positive pass: an `nn.LayerNorm` is its
affine part |γ|·x + |β| (normalizing a constant vector, which all-ones embeddings give, is
zero, and centering makes values negative), and an `nn.Tanh` (BERT's pooler) passes its
input (tanh saturates on the large positive flow: its derivative is 0 in float64 above 19).

Reference: Tanaka, Kunin, Yamins & Ganguli 2020, "Pruning neural networks without any
data by iteratively conserving synaptic flow", https://arxiv.org/abs/2006.05467
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import torch
from pydantic import Field
from torch import nn
from torch.func import functional_call

from paiexport.inputs import Inputs, is_integer, map_inputs, positional
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
        ones = ones_inputs(ctx.data.example(1), device)
        args, kwargs = ((), ones) if isinstance(ones, dict) else (positional(model, ones), None)
        was_training = model.training
        model.eval()  # BatchNorm uses its (absolute) running statistics, as in the paper
        try:
            with embeddings_give_ones(model), linear_flow(model):
                outputs = functional_call(model, state, args, kwargs)
            flow = ctx.data.task.pick(outputs).sum()  # R: the output the task reads
        finally:
            model.train(was_training)
        grads = torch.autograd.grad(flow, list(weights.values()))
        return {n: (w * g).detach().abs() for (n, w), g in zip(weights.items(), grads, strict=True)}


def ones_inputs(example: Inputs, device: torch.device) -> Inputs:
    """All-ones inputs shaped like `example`: float64 for float inputs, int64 for integer ones."""
    return map_inputs(
        example,
        lambda t: torch.ones(t.shape, dtype=torch.int64 if is_integer(t) else torch.float64, device=device),
    )


@contextmanager
def embeddings_give_ones(model: nn.Module) -> Iterator[None]:
    """Meanwhile every embedding looks up id 0 and outputs ones (see the module docstring)."""
    tables = [m for m in model.modules() if isinstance(m, nn.Embedding | nn.EmbeddingBag)]
    handles = [m.register_forward_pre_hook(_zero_ids) for m in tables]
    handles += [m.register_forward_hook(lambda _m, _i, out: torch.ones_like(out)) for m in tables]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def linear_flow(model: nn.Module) -> Iterator[None]:
    """Meanwhile every LayerNorm is |γ|·x + |β| and every Tanh the identity (module docstring)."""
    handles = []
    for module in model.modules():
        if isinstance(module, nn.LayerNorm):
            handles.append(module.register_forward_hook(_affine_only))
        elif isinstance(module, nn.Tanh):
            handles.append(module.register_forward_hook(lambda _m, args, _out: args[0]))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _affine_only(module: nn.LayerNorm, args: tuple, _out: torch.Tensor) -> torch.Tensor:
    """The LayerNorm's output without the normalization (its weights are the pass's |θ| copies)."""
    x = args[0]
    if module.weight is not None:
        x = x * module.weight
    return x + module.bias if module.bias is not None else x


def _zero_ids(_module: nn.Module, args: tuple) -> tuple:
    return (torch.zeros_like(args[0]), *args[1:])
