"""Gradual magnitude pruning during training (Zhu & Gupta's cubic schedule).

Sparsity rises from `init_sparsity` at step t0 = start_epoch·S to `sparsity.target` at
t0 + nΔt = end_epoch·S (S = steps per epoch):

    s_t = s_f + (s_i − s_f)(1 − (t − t0)/(nΔt))³

The mask is recomputed from the current |θ| every Δt = `update_every` steps (and at the
end step), allocated per `sparsity.distribution`; a pruned weight never comes back, and
after end_epoch the mask is held fixed for fine-tuning. The run exports the *last*
checkpoint whatever `train.checkpoint` says: earlier checkpoints are less sparse.

Reference: Zhu & Gupta 2017, "To prune, or not to prune: exploring the efficacy of
pruning for model compression", https://arxiv.org/abs/1710.01878
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field

from paiexport.errors import UserError
from paiexport.methods.base import Method, MethodConfig, SelectionContext, Trainer
from paiexport.methods.post_training import magnitude_masks
from paiexport.sparsity.masks import attach_masks
from paiexport.sparsity.types import Masks, SparsityConfig
from paiexport.training.callbacks import KeepPrunedZero, TrainCallback, TrainState
from paiexport.training.distributed import check_masks_agree
from paiexport.training.loop import CheckpointChoice, TrainResult


class GMPConfig(MethodConfig):
    name: Literal["gmp"] = "gmp"
    init_sparsity: float = Field(default=0.0, ge=0.0, lt=1.0, description="s_i, reached at start_epoch")
    start_epoch: int = Field(default=0, ge=0, description="pruning starts at the beginning of this epoch")
    end_epoch: int | None = Field(
        default=None, ge=1, description="target reached at the end of this epoch; default: 3/4 of epochs"
    )
    update_every: int = Field(default=10, ge=1, description="Δt: optimizer steps between mask updates")


def cubic_sparsity(t: int, t0: int, t_end: int, s_i: float, s_f: float) -> float:
    """Zhu & Gupta's schedule, held at s_i before t0 and at s_f after t_end."""
    if t >= t_end:
        return s_f
    if t <= t0:
        return s_i
    return s_f + (s_i - s_f) * (1.0 - (t - t0) / (t_end - t0)) ** 3


def resolve_end_epoch(cfg: GMPConfig, epochs: int) -> int:
    """`end_epoch`, defaulting to 3/4 of the epochs (at least one epoch after start_epoch)."""
    end = cfg.end_epoch if cfg.end_epoch is not None else max(cfg.start_epoch + 1, round(0.75 * epochs))
    if not cfg.start_epoch < end <= epochs:
        raise UserError(
            f"method.end_epoch: pruning must end after start_epoch {cfg.start_epoch} and by the last "
            f"epoch ({epochs} of train.epochs); got end_epoch {end}"
        )
    return end


class GradualPruning(TrainCallback):
    """Recomputes the masks on the cubic schedule; records every update."""

    def __init__(self, cfg: GMPConfig, sparsity: SparsityConfig) -> None:
        self.cfg, self.sparsity = cfg, sparsity
        self.t0 = self.t_end = 0
        self.updates: list[dict[str, Any]] = []

    def on_train_begin(self, state: TrainState) -> None:
        per_epoch = state.steps_per_epoch
        end_epoch = resolve_end_epoch(self.cfg, state.total_steps // max(per_epoch, 1))
        self.t0, self.t_end = self.cfg.start_epoch * per_epoch, end_epoch * per_epoch
        if self.t0 == 0:
            self._update(state)

    def on_step_end(self, state: TrainState) -> None:
        t = state.step
        if self.t0 <= t <= self.t_end and ((t - self.t0) % self.cfg.update_every == 0 or t == self.t_end):
            self._update(state)

    def state_dict(self) -> dict[str, Any]:
        return {"updates": list(self.updates)}  # the schedule position is the step itself

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.updates = list(state["updates"])

    def _update(self, state: TrainState) -> None:
        t = state.step
        target = cubic_sparsity(t, self.t0, self.t_end, self.cfg.init_sparsity, self.sparsity.target)
        masks = magnitude_masks(state.model, self.sparsity, target, f"gmp at step {t}")
        attach_masks(state.model, masks)
        check_masks_agree(state.model, f"gmp update at step {t}")  # under torchrun: same on every rank
        self.updates.append({"step": t, "sparsity": target})


class GradualMagnitudePruning(Method):
    config_class = GMPConfig

    def __init__(self, config: GMPConfig) -> None:
        super().__init__(config)
        self.schedule: GradualPruning | None = None

    def select(self, ctx: SelectionContext) -> Masks:
        """All-ones masks: training starts dense, the schedule prunes from there."""
        return {n: torch.ones_like(w, dtype=torch.bool) for n, w in ctx.prunable().items()}

    def callbacks(self, ctx: SelectionContext) -> list[TrainCallback]:
        cfg: GMPConfig = self.config
        if cfg.init_sparsity > ctx.sparsity.target:
            raise UserError(
                f"method.init_sparsity: {cfg.init_sparsity} is above sparsity.target {ctx.sparsity.target}"
            )
        self.schedule = GradualPruning(cfg, ctx.sparsity)
        return [self.schedule]

    def fit(self, ctx: SelectionContext, trainer: Trainer) -> TrainResult:
        attach_masks(ctx.model, self.select(ctx))
        callbacks = [KeepPrunedZero(), *self.callbacks(ctx)]
        return trainer(ctx.model, callbacks, checkpoint=CheckpointChoice.last)

    def report(self) -> dict[str, Any]:
        return {"mask_updates": self.schedule.updates if self.schedule else []}
