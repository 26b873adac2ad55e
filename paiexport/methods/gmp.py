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

from typing import Annotated, Any, Literal

import torch
from pydantic import Field
from torch import nn

from paiexport.errors import UserError
from paiexport.inputs import Inputs, take
from paiexport.methods.base import FitResult, Method, MethodConfig, SelectionContext, Trainer
from paiexport.methods.gmp_groups import GMPGroup, GroupedPruning, group_targets
from paiexport.methods.post_training import magnitude_masks
from paiexport.sparsity.masks import attach_masks, layer_sparsity, masks_sparsity, prunable_weights
from paiexport.sparsity.schedules import cubic_sparsity, gmp_update_due
from paiexport.sparsity.types import LayerTargets, Masks, SparsityConfig
from paiexport.training.callbacks import KeepPrunedZero, TrainCallback, TrainState
from paiexport.training.config import CheckpointChoice
from paiexport.training.distributed import check_masks_agree


class GMPConfig(MethodConfig):
    name: Literal["gmp"] = "gmp"
    init_sparsity: float = Field(default=0.0, ge=0.0, lt=1.0, description="s_i, reached at start_epoch")
    start_epoch: int = Field(default=0, ge=0, description="pruning starts at the beginning of this epoch")
    end_epoch: int | None = Field(
        default=None, ge=1, description="target reached at the end of this epoch; default: 3/4 of epochs"
    )
    update_every: int = Field(default=10, ge=1, description="Δt: optimizer steps between mask updates")
    groups: list[GMPGroup] | None = Field(
        default=None, description="per-group schedules (gmp_groups.py); replaces the fields above"
    )
    notes: list[Annotated[str, Field(max_length=500)]] = Field(
        default_factory=list, max_length=20, description="copied to report.json notes (recipes convert)"
    )


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

    def __init__(self, cfg: GMPConfig, sparsity: SparsityConfig, example: Inputs) -> None:
        self.cfg, self.sparsity, self.example = cfg, sparsity, example
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
        if gmp_update_due(t, self.t0, self.t_end, self.cfg.update_every):
            self._update(state)

    def state_dict(self) -> dict[str, Any]:
        return {"updates": list(self.updates)}  # the schedule position is the step itself

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.updates = list(state["updates"])

    def _update(self, state: TrainState) -> None:
        t = state.step
        target = cubic_sparsity(t, self.t0, self.t_end, self.cfg.init_sparsity, self.sparsity.target)
        masks = magnitude_masks(state.model, self.sparsity, target, f"gmp at step {t}", self.example)
        attach_masks(state.model, masks)
        check_masks_agree(state.model, f"gmp update at step {t}")  # under torchrun: same on every rank
        # sparsity: the schedule's target; reached: the weights removed (group targets differ)
        self.updates.append({"step": t, "sparsity": target, "reached": masks_sparsity(masks)})


class GradualMagnitudePruning(Method):
    config_class = GMPConfig

    def select(self, ctx: SelectionContext) -> Masks:
        """All-ones masks: training starts dense, the schedule prunes from there."""
        return {n: torch.ones_like(w, dtype=torch.bool) for n, w in ctx.prunable().items()}

    def callbacks(self, ctx: SelectionContext) -> list[TrainCallback]:
        cfg: GMPConfig = self.config
        if cfg.groups is not None:
            return [GroupedPruning(cfg.groups)]
        if cfg.init_sparsity > ctx.sparsity.target:
            raise UserError(
                f"method.init_sparsity: {cfg.init_sparsity} is above sparsity.target {ctx.sparsity.target}"
            )
        return [GradualPruning(cfg, ctx.sparsity, take(ctx.data.train.x, slice(None, 2)))]

    def fit(self, ctx: SelectionContext, trainer: Trainer) -> FitResult:
        attach_masks(ctx.model, self.select(ctx))
        callbacks = self.callbacks(ctx)
        result = trainer(ctx.model, [KeepPrunedZero(), *callbacks], checkpoint=CheckpointChoice.last)
        grouped = [note for c in callbacks if isinstance(c, GroupedPruning) for note in c.notes]
        cfg: GMPConfig = self.config
        return FitResult(result, self.details(callbacks), notes=[*cfg.notes, *grouped])

    def details(self, callbacks: list[TrainCallback]) -> dict[str, Any]:
        schedules = [c for c in callbacks if isinstance(c, GradualPruning | GroupedPruning)]
        return {"mask_updates": schedules[0].updates if schedules else []}

    def layer_targets(self, model: nn.Module, sparsity: SparsityConfig) -> LayerTargets | None:
        """With `groups`: each group's final_sparsity and the overall target they imply
        (`group_targets`); without, the recipe's `sparsity` sets the targets."""
        cfg: GMPConfig = self.config
        if cfg.groups is None:
            return None
        numels = {n: w.numel() for n, w in prunable_weights(model, sparsity.exclude).items()}
        target, per_layer = group_targets(cfg.groups, numels, layer_sparsity(model, sparsity.exclude))
        return LayerTargets(target, per_layer, "groups")
