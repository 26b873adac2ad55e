"""Lottery tickets: iterative magnitude pruning (IMP) with rewinding.

Level 0 trains the dense network. Each level k = 1..n then prunes the smallest-magnitude
surviving weights of the trained network (per `sparsity.distribution`: per layer for
uniform/ERK, across layers for global) down to density d_k, rewinds every parameter and
buffer to its value at `rewind_step` (0 = the initialization, Frankle & Carbin; > 0 =
weight rewinding, Frankle et al. 2020), attaches the mask and trains again. Densities:
d_k = d^(k/n) by default (the constant per-level rate that lands on `sparsity.target` at
level n), or (1 − rate)^k with `rate`, the last level clipped to the target.
Each retraining starts a fresh optimizer and the recipe's full LR schedule.

Every level's sparsity and accuracy go to report.json (`levels`) and metrics.jsonl.

Reference: Frankle & Carbin 2019, "The Lottery Ticket Hypothesis",
https://arxiv.org/abs/1803.03635; Frankle, Dziugaite, Roy & Carbin 2020, "Linear Mode
Connectivity and the Lottery Ticket Hypothesis", https://arxiv.org/abs/1912.05595
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch
from pydantic import Field
from torch import nn

from paiexport.errors import UserError
from paiexport.methods.base import FitResult, Method, MethodConfig, SelectionContext, Trainer
from paiexport.methods.post_training import magnitude_masks, stage_record
from paiexport.paths import level_phase
from paiexport.sparsity.masks import MASK_BUFFER, attach_masks
from paiexport.sparsity.schedules import level_densities
from paiexport.sparsity.types import Masks
from paiexport.training.callbacks import KeepPrunedZero, TrainCallback, TrainState
from paiexport.training.loop import TrainResult

State = dict[str, torch.Tensor]


class LTHConfig(MethodConfig):
    name: Literal["lth"] = "lth"
    levels: int = Field(default=3, ge=1, description="prune-rewind-retrain rounds after the dense training")
    rate: float | None = Field(
        default=None,
        gt=0.0,
        lt=1.0,
        description="fraction of the remaining weights pruned per level (default: d^(1/levels))",
    )
    rewind_step: int = Field(default=0, ge=0, description="rewind to the weights after this many steps")


def snapshot(model: nn.Module) -> State:
    """A copy of every parameter and buffer (masks excluded: rewinding keeps the new mask)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items() if not k.endswith(MASK_BUFFER)}


@torch.no_grad()
def rewind(model: nn.Module, stored: State, masks: Masks) -> None:
    """Restore exactly the stored tensors, then attach `masks` (pruned weights become zero)."""
    current = model.state_dict()
    for key, value in stored.items():
        current[key].copy_(value)
    attach_masks(model, masks)


class RewindPoint(TrainCallback):
    """During the dense training: store the state after `step` optimizer steps; keep `state.log`."""

    def __init__(self, step: int) -> None:
        self.step = step
        self.stored: State | None = None
        self.log: Callable[[dict[str, Any]], None] | None = None

    def on_train_begin(self, state: TrainState) -> None:
        self.log = state.log
        if self.step > state.total_steps:
            raise UserError(
                f"method.rewind_step: {self.step} is past the end of the dense training "
                f"({state.total_steps} steps)"
            )
        if self.step == 0:
            self.stored = snapshot(state.model)

    def on_step_end(self, state: TrainState) -> None:
        if state.step == self.step:
            self.stored = snapshot(state.model)

    def state_dict(self) -> dict[str, Any]:
        return {"stored": self.stored}  # the rewind weights

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.stored = state["stored"]


class LotteryTicket(Method):
    config_class = LTHConfig

    def select(self, ctx: SelectionContext) -> Masks | None:
        return None  # the first level trains dense

    def fit(self, ctx: SelectionContext, trainer: Trainer) -> FitResult:
        cfg: LTHConfig = self.config
        densities = level_densities(1.0 - ctx.sparsity.target, cfg.levels, cfg.rate)
        point = RewindPoint(cfg.rewind_step)
        result = trainer(ctx.model, [point], tag=level_phase(0))
        levels = [_record(0, ctx, result, point)]
        for level, density in enumerate(densities, start=1):
            masks = magnitude_masks(
                ctx.model, ctx.sparsity, 1.0 - density, f"lth level {level}", ctx.data.train.x
            )
            rewind(ctx.model, point.stored, masks)
            result = trainer(ctx.model, [KeepPrunedZero()], tag=level_phase(level))
            levels.append(_record(level, ctx, result, point))
        return FitResult(result, {"levels": levels})


def _record(level: int, ctx: SelectionContext, result: TrainResult, point: RewindPoint) -> dict[str, Any]:
    record = {"level": level, **stage_record(ctx, result)}
    if point.log is not None:
        point.log(record)  # metrics.jsonl: one line per level next to the epoch lines
    return record
