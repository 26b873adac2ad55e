"""Static criteria: `ScoreMethod` (score every weight, keep the highest) and the mechanics
every static criterion shares: iterative `rounds` and sanity-check ablations.

- Iterative selection (`rounds` > 1): prune in rounds to densities d^(k/n) (exponential,
  as SynFlow) or 1 − (1 − d)·k/n (linear), recomputing the scores each round on a scratch
  copy of the model with the current masks attached. A weight pruned in one round stays
  pruned (its score is set to −inf), so the masks only ever shrink.
- Ablations (`ablation`): `random_ticket` keeps each layer's kept count but reshuffles its
  positions (Su et al. 2020); `reinit` keeps the mask but redraws the initial weights;
  `invert` keeps the lowest scores instead of the highest (Frankle et al. 2021).

Reference: Tanaka et al. 2020 (iterative schedule), https://arxiv.org/abs/2006.05467;
Su et al. 2020, "Sanity-Checking Pruning Methods: Random Tickets can Win the Jackpot",
https://arxiv.org/abs/2009.11094; Frankle et al. 2021, "Pruning Neural Networks at
Initialization: Why are We Missing the Mark?", https://arxiv.org/abs/2009.08576
"""

from __future__ import annotations

import copy
import dataclasses
from abc import abstractmethod
from collections.abc import Callable
from enum import StrEnum

import torch
from pydantic import Field
from torch import nn

from paiexport.methods.base import FitResult, Method, MethodConfig, SelectionContext, Trainer
from paiexport.sparsity.masks import attach_masks
from paiexport.sparsity.schedules import RoundSchedule, round_densities
from paiexport.sparsity.structure import select_structured
from paiexport.sparsity.types import Masks, Scores


class Ablation(StrEnum):
    none = "none"
    random_ticket = "random_ticket"
    reinit = "reinit"
    invert = "invert"


def iterative_masks(
    score_fn: Callable[[SelectionContext], Scores],
    ctx: SelectionContext,
    rounds: int = 1,
    schedule: RoundSchedule = RoundSchedule.exponential,
    invert: bool = False,
) -> list[Masks]:
    """The masks after every round (the last one is the selection).

    One round scores `ctx.model` directly. More rounds score a scratch copy with the
    masks of the previous round attached, so `ctx.model` is never touched.
    """
    sign = -1.0 if invert else 1.0
    target = ctx.sparsity.target
    if rounds == 1:
        scores = {n: sign * s for n, s in score_fn(ctx).items()}
        return [select_structured(scores, ctx.model, ctx.sparsity, ctx.data.train.x)]
    scratch = dataclasses.replace(ctx, model=copy.deepcopy(ctx.model))
    history: list[Masks] = []
    for k, density in enumerate(round_densities(1.0 - target, rounds, schedule), start=1):
        scores = {n: sign * s.double() for n, s in score_fn(scratch).items()}
        if history:
            scores = {n: s.masked_fill(~history[-1][n], float("-inf")) for n, s in scores.items()}
        round_target = target if k == rounds else 1.0 - density
        masks = select_structured(scores, scratch.model, ctx.sparsity.at(round_target), ctx.data.train.x)
        attach_masks(scratch.model, masks)
        history.append(masks)
    return history


def shuffle_within_layers(masks: Masks, generator: torch.Generator) -> Masks:
    """Random ticket: the same number kept in every layer, at random positions."""
    shuffled = {}
    for name, mask in masks.items():
        order = torch.randperm(mask.numel(), generator=generator)
        shuffled[name] = mask.flatten()[order].view_as(mask)
    return shuffled


def reinitialize(model: nn.Module) -> None:
    """Fresh initial weights for every layer (from torch's global RNG, seeded by the recipe)."""
    for module in model.modules():
        if module is not model and hasattr(module, "reset_parameters"):
            module.reset_parameters()


class ScoreConfig(MethodConfig):
    """Options every static criterion shares (see `paiexport.methods.score`)."""

    rounds: int = Field(default=1, ge=1, description="prune iteratively, rescoring every round")
    schedule: RoundSchedule = Field(
        default=RoundSchedule.exponential, description="density per round: d^(k/n) or linear"
    )
    ablation: Ablation = Field(default=Ablation.none, description="sanity check: random_ticket|reinit|invert")


class ScoreMethod(Method):
    """A static criterion: score every prunable weight, keep the highest (see `allocation`).

    With a `ScoreConfig`, every criterion gets iterative `rounds` and the `ablation`
    sanity checks from `paiexport.methods.score`.
    """

    @abstractmethod
    def scores(self, ctx: SelectionContext) -> dict[str, torch.Tensor]:
        """Importance per weight (higher = keep), keyed like `ctx.prunable()`."""

    @property
    def options(self) -> ScoreConfig:
        if isinstance(self.config, ScoreConfig):
            return self.config
        return ScoreConfig(name=self.config.name)

    def select_rounds(self, ctx: SelectionContext) -> list[Masks]:
        """The masks after every selection round (the last one is the selection)."""
        opts = self.options
        invert = opts.ablation is Ablation.invert
        return iterative_masks(self.scores, ctx, opts.rounds, opts.schedule, invert)

    def select(self, ctx: SelectionContext) -> Masks:
        masks = self.select_rounds(ctx)[-1]
        if self.options.ablation is Ablation.random_ticket:
            masks = shuffle_within_layers(masks, ctx.generator)
        return masks

    def fit(self, ctx: SelectionContext, trainer: Trainer) -> FitResult:
        masks = self.select(ctx)
        if self.options.ablation is Ablation.reinit:
            reinitialize(ctx.model)  # same mask, fresh initial weights
        return self.train_with_masks(ctx, masks, trainer)
