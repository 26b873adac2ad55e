"""Sparse selection: train a real-valued score per weight, never the weights themselves.

The weights are re-initialized (`weight_init`) and frozen; every parameter keeps its
value bit for bit. Each prunable weight gets a parametrization `weight -> weight · mask`
whose mask comes from trainable scores through a straight-through estimator; the recipe's
optimizer and schedule train only those scores. Each layer keeps a fixed number of
weights, set by the recipe's distribution (uniform: the top 1 − target per layer). After
training the final mask is attached with `attach_masks`, so the exported model is the
fixed random weights times the selected mask.

Reference: Ramanujan et al. 2020, "What's Hidden in a Randomly Weighted Neural Network?",
https://arxiv.org/abs/1911.13299
"""

from __future__ import annotations

import math
from abc import abstractmethod
from enum import StrEnum
from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn.utils import parametrize

from paiexport.errors import UserError
from paiexport.methods.base import FitResult, Method, MethodConfig, SelectionContext, Trainer
from paiexport.sparsity.allocation import layer_keep_counts
from paiexport.sparsity.masks import attach_masks, holders, prunable_modules
from paiexport.sparsity.topk import top_k_mask
from paiexport.sparsity.types import Distribution, Masks, SparsityConfig


class WeightInit(StrEnum):
    signed_constant = "signed_constant"  # ±σ of Kaiming normal, random sign (best in the paper)
    kaiming = "kaiming"  # Kaiming normal, fan_in, ReLU gain


class SelectionConfig(MethodConfig):
    weight_init: WeightInit = WeightInit.signed_constant


@torch.no_grad()
def initialize_weight(weight: torch.Tensor, how: WeightInit, generator: torch.Generator) -> None:
    std = math.sqrt(2.0 / weight[0].numel())  # Kaiming normal's σ for ReLU, fan_in
    if how is WeightInit.kaiming:
        weight.copy_(torch.randn(weight.shape, generator=generator) * std)
    else:
        sign = torch.randint(0, 2, weight.shape, generator=generator) * 2 - 1
        weight.copy_(sign.to(weight.dtype) * std)


def top_k(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Float 0/1 mask (dtype of `scores`) of the k largest scores, ties as `top_k_mask`."""
    return top_k_mask(scores, k).to(scores.dtype)


class StraightThrough(torch.autograd.Function):
    """Forward: a given 0/1 mask; backward: the gradient passes to the scores unchanged."""

    @staticmethod
    def forward(ctx: Any, scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return mask

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad, None


class MaskSelector(nn.Module):
    """Parametrization `weight -> weight · mask(scores)`; `scores` is its only parameter."""

    def __init__(self, weight: torch.Tensor, keep: int, generator: torch.Generator) -> None:
        super().__init__()
        self.keep = keep
        self.scores = nn.Parameter(self.initial_scores(weight, keep, generator))

    @staticmethod
    @abstractmethod
    def initial_scores(weight: torch.Tensor, keep: int, generator: torch.Generator) -> torch.Tensor: ...

    @abstractmethod
    def mask(self) -> torch.Tensor:
        """The mask used in this forward pass (differentiable in `scores`)."""

    @abstractmethod
    def final_mask(self) -> torch.Tensor:
        """The bool mask exported: exactly `keep` weights."""

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight * self.mask()


class SparseSelection(Method):
    """Freeze the weights, train `selector_class` scores, attach the final mask."""

    supports_structure = False

    config_class: ClassVar[type[SelectionConfig]]
    selector_class: ClassVar[type[MaskSelector]]
    trains_weights = False

    def select(self, ctx: SelectionContext) -> Masks | None:
        """Unused: the mask is chosen by training scores in `fit`."""
        return None

    def keep_counts(self, ctx: SelectionContext) -> dict[str, int]:
        if ctx.sparsity.distribution is Distribution.global_:
            raise UserError(
                f"sparsity.distribution: {self.config.name} keeps a fixed number of weights per layer; "
                "use uniform or erk"
            )
        shapes = {n: tuple(w.shape) for n, w in ctx.prunable().items()}
        counts = layer_keep_counts(shapes, ctx.sparsity.target, ctx.sparsity.distribution)
        empty = [n for n, k in counts.items() if k == 0]
        if empty and not ctx.sparsity.allow_layer_collapse:  # say so before training, not after
            raise UserError(
                f"sparsity.allow_layer_collapse: {self.config.name} would keep no weight in "
                f"{', '.join(empty)}; lower sparsity.target or allow the collapse"
            )
        return counts

    def fit(self, ctx: SelectionContext, trainer: Trainer) -> FitResult:
        keep = self.keep_counts(ctx)
        for module in prunable_modules(ctx.model).values():  # excluded layers too: all stay random
            initialize_weight(module.weight, self.config.weight_init, ctx.generator)
        frozen = [p for p in ctx.model.parameters() if p.requires_grad]
        for p in frozen:
            p.requires_grad_(False)
        modules = prunable_modules(ctx.model, ctx.sparsity.exclude)
        selectors, held = {}, []
        for name, module in modules.items():
            selectors[name] = self.selector_class(module.weight, keep[name], ctx.generator)
            for holder in holders(ctx.model, module.weight):  # a tied weight: every module that uses it
                parametrize.register_parametrization(*holder, selectors[name])
                held.append(holder)
        result = trainer(ctx.model, [])
        self.finalize(ctx)
        masks = {name: s.final_mask() for name, s in selectors.items()}
        for holder in held:
            parametrize.remove_parametrizations(*holder, leave_parametrized=False)
        for p in frozen:
            p.requires_grad_(True)
        attach_masks(ctx.model, masks)
        return FitResult(result, self.details_for(keep))

    def replay_layout(self, model: nn.Module, sparsity: SparsityConfig) -> None:
        """`fit`'s parametrizations, on and off again: each selected weight is registered anew,
        after its module's other parameters (a Linear's bias comes first in the exported graph)."""
        held = []
        for module in prunable_modules(model, sparsity.exclude).values():
            for holder in holders(model, module.weight):
                parametrize.register_parametrization(*holder, nn.Identity())
                held.append(holder)
        for holder in held:
            parametrize.remove_parametrizations(*holder, leave_parametrized=False)

    def finalize(self, ctx: SelectionContext) -> None:
        """Last adjustments with the trained scores in place (the parametrizations still attached)."""

    def details_for(self, keep: dict[str, int]) -> dict[str, Any]:
        return {
            "sparse_selection": {
                "weight_init": self.config.weight_init.value,
                "trained": "scores only (weights frozen at their initialization)",
                "keep_per_layer": keep,
            }
        }
