"""`gmp` by parameter group: each group has its own schedule, as SparseML's pruning modifiers.

    method:
      name: gmp
      groups:
        - {params: [conv1.weight, "re:fc.*"], init_sparsity: 0.05, final_sparsity: 0.8,
           start_epoch: 1.0, end_epoch: 8.0, update_frequency: 0.5, inter_func: cubic}
        - {kind: global, params: [__ALL_PRUNABLE__], ...}   # one target over the group
        - {kind: constant, params: [fc.weight], start_epoch: 0.0}  # keep today's zeros

Weights in no group stay dense. Updates fall on the steps sparsity/gradual.py gives
(fractional epochs, SparseML's update_ready); each sets interpolate(e, ...) and zeroes
exactly counts.removed(numel, s) weights of a layer (kind layer) or of the group stacked (global).
They run after backward, before the optimizer step, where SparseML's manager ran.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field, model_validator

from paiexport.config import StrictModel
from paiexport.errors import UserError
from paiexport.sparsity.counts import removed
from paiexport.sparsity.gradual import (
    epoch_of_step,
    interpolate,
    pruning_update_epochs,
    resolve_params,
)
from paiexport.sparsity.masks import attach_masks, get_masks, prunable_weights
from paiexport.sparsity.topk import top_k_mask
from paiexport.training.callbacks import TrainCallback, TrainState


class GMPGroup(StrictModel):
    params: list[str] = Field(min_length=1, description="names, re: patterns or __ALL_PRUNABLE__")
    kind: Literal["layer", "global", "constant"] = "layer"
    init_sparsity: float = Field(default=0.0, ge=0.0, le=1.0)
    final_sparsity: float | None = Field(default=None, ge=0.0, le=1.0)
    start_epoch: float = -1.0
    end_epoch: float = -1.0
    update_frequency: float = -1.0
    inter_func: Literal["cubic", "linear"] = "cubic"
    leave_enabled: bool = True

    @model_validator(mode="after")
    def _schedule_complete(self) -> GMPGroup:
        if self.kind == "constant":
            return self
        if self.final_sparsity is None:
            raise ValueError("final_sparsity: required for a layer or global group")
        if not 0.0 <= self.start_epoch < self.end_epoch or self.update_frequency <= 0.0:
            raise ValueError("needs 0 <= start_epoch < end_epoch and update_frequency > 0")
        return self


def _group_notes(i: int, group: GMPGroup, plan: dict[int, float], epochs: float) -> list[str]:
    """Notes for a schedule the run cuts short or releases (SparseML behaves the same)."""
    notes = []
    if not group.leave_enabled and plan:
        notes.append(f"method.groups[{i}]: leave_enabled false: its masks are released after end_epoch")
    if group.kind == "constant" or (plan and max(plan.values()) >= group.final_sparsity):
        return notes
    last = f"its last update sets {max(plan.values()):.4g}" if plan else "it never updates"
    return [
        *notes,
        f"method.groups[{i}]: end_epoch {group.end_epoch:g} is not reached in {epochs:g} epochs of "
        f"training: {last}, final_sparsity {group.final_sparsity:g} is never applied (as in SparseML)",
    ]


def group_targets(
    groups: list[GMPGroup], numels: dict[str, int], reached: dict[str, float]
) -> tuple[float, dict[str, float | None]]:
    """Overall target implied by the groups (weighted by layer sizes) and each layer's target.

    A layer in no group targets 0 (it stays dense); a layer of a global group gets the group's
    target (layers differ, their sum meets it); a constant group keeps the zeros it finds, so
    it has no per-layer target and counts with what it reached.
    """
    per_layer: dict[str, float | None] = dict.fromkeys(numels, 0.0)
    for i, group in enumerate(groups):
        for name in resolve_params(group.params, list(numels), f"method.groups[{i}].params"):
            per_layer[name] = None if group.kind == "constant" else group.final_sparsity
    pruned = sum(numels[n] * (reached[n] if t is None else t) for n, t in per_layer.items())
    return pruned / max(sum(numels.values()), 1), per_layer


def _layer_mask(weight: torch.Tensor, old: torch.Tensor | None, zeros: int) -> torch.Tensor:
    """Keep all but the `zeros` smallest |w| (`top_k_mask`: among equal |w| the lower index
    stays); weights already pruned go first."""
    score = weight.detach().abs().double().flatten()
    if old is not None:
        score = score.masked_fill(~old.flatten(), -1.0)
    return top_k_mask(score, score.numel() - zeros).view_as(weight)


class GroupedPruning(TrainCallback):
    """Applies each group's schedule; logs one metrics.jsonl record per group update."""

    def __init__(self, groups: list[GMPGroup]) -> None:
        self.groups = groups
        self.names: list[list[str]] = []
        self.steps: list[dict[int, float]] = []  # per group: step -> target sparsity
        self.updates: list[dict[str, Any]] = []
        self.notes: list[str] = []  # report.json notes: schedules the run cuts short

    def on_train_begin(self, state: TrainState) -> None:
        names = list(prunable_weights(state.model))
        owner: dict[str, int] = {}
        spe, total = max(state.steps_per_epoch, 1), state.total_steps
        for i, group in enumerate(self.groups):
            chosen = resolve_params(group.params, names, f"method.groups[{i}].params")
            for name in chosen:
                if name in owner:
                    raise UserError(f"method.groups[{i}].params: {name} is already in groups[{owner[name]}]")
                owner[name] = i
            self.names.append(chosen)
            self.steps.append(self._plan(group, spe, total))
            self.notes += _group_notes(i, group, self.steps[-1], total / spe)

    @staticmethod
    def _plan(group: GMPGroup, spe: int, total: int) -> dict[int, float]:
        if group.kind == "constant":
            first = next((t for t in range(total) if epoch_of_step(t, spe) >= group.start_epoch), None)
            return {} if first is None else {first: -1.0}
        plan = {}
        for e in pruning_update_epochs(group, spe, total):
            start, end = group.start_epoch, group.end_epoch
            s = interpolate(e, start, end, group.init_sparsity, group.final_sparsity, group.inter_func)
            plan[round(e * spe)] = s
        return plan

    def on_after_backward(self, state: TrainState) -> None:
        for i, group in enumerate(self.groups):
            target = self.steps[i].get(state.step)
            if target is not None:
                self._update(state, i, group, target)

    @staticmethod
    def _record(
        state: TrainState, i: int, group: GMPGroup, target: float, masks: dict[str, torch.Tensor]
    ) -> dict[str, Any]:
        """The metrics.jsonl line of one group update."""
        return {
            "event": "mask_update",
            "group": i,
            "step": state.step,
            "epoch": epoch_of_step(state.step, max(state.steps_per_epoch, 1)),
            "target": None if group.kind == "constant" else target,
            "zeros": {n: int((~m).sum()) for n, m in masks.items()},
        }

    def _update(self, state: TrainState, i: int, group: GMPGroup, target: float) -> None:
        weights = prunable_weights(state.model)
        old = get_masks(state.model)
        names = self.names[i]
        if group.kind == "constant":
            masks = {n: weights[n].detach() != 0 for n in names}
        elif group.kind == "layer":
            masks = {
                n: _layer_mask(weights[n], old.get(n), removed(weights[n].numel(), target)) for n in names
            }
        else:
            flat = torch.cat([weights[n].detach().flatten() for n in names])
            prior = torch.cat(
                [
                    old[n].flatten() if n in old else torch.ones_like(weights[n], dtype=torch.bool).flatten()
                    for n in names
                ]
            )
            keep = _layer_mask(flat, prior, removed(flat.numel(), target))
            masks = dict(zip(names, torch.split(keep, [weights[n].numel() for n in names]), strict=True))
            masks = {n: m.view_as(weights[n]) for n, m in masks.items()}
        attach_masks(state.model, masks)
        record = self._record(state, i, group, target, masks)
        state.log(record)
        self.updates.append(record)
        if not group.leave_enabled and state.step == max(self.steps[i]):
            attach_masks(state.model, {n: torch.ones_like(m) for n, m in masks.items()})
