"""Dynamic sparse training: the mask changes during training, the sparsity does not.

Shared by SET, RigL and SNFS: the typed schedule (`DynamicConfig`), the initial mask
(any static criterion via `method.init`, with the recipe's distribution) and the update
itself (`MaskUpdater`). Every `update_every` optimizer steps, until `end_fraction` of
training, each masked layer drops the `f(step)` fraction of its active weights with the
smallest magnitude and regrows as many among the positions that were inactive before the
update; subclasses only say which positions to grow (`grow_scores`) and, for SNFS, how
many per layer (`grow_counts`). Regrown weights start at exactly zero with zeroed optimizer
state; every update is logged to metrics.jsonl and summarized as `mask_updates`.

Reference: Evci et al. 2020, "Rigging the Lottery: Making All Tickets Winners",
https://arxiv.org/abs/1911.11134 (the shared cosine drop schedule, Section 3).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch
from pydantic import Field, field_validator

from paiexport.methods.base import Method, MethodConfig, SelectionContext
from paiexport.methods.score import ScoreMethod
from paiexport.sparsity.counts import removed
from paiexport.sparsity.masks import MASK_BUFFER, attach_masks, prunable_modules
from paiexport.sparsity.schedules import DropSchedule, dynamic_drop_fraction
from paiexport.sparsity.topk import top_k_mask
from paiexport.sparsity.types import Masks
from paiexport.training.callbacks import TrainCallback, TrainState
from paiexport.training.distributed import check_masks_agree


def static_criteria() -> dict[str, type[ScoreMethod]]:
    """Registered methods that can choose an initial mask (imported late: the registry imports us)."""
    from paiexport.methods import METHODS

    return {n: cls for n, cls in METHODS.items() if issubclass(cls, ScoreMethod)}


class DynamicConfig(MethodConfig):
    """Options shared by every dynamic method (`method:` section)."""

    init: str = Field(default="random", description="static criterion choosing the initial mask")
    update_every: int = Field(default=100, ge=1, description="optimizer steps between mask updates")
    drop_fraction: float = Field(
        default=0.3, gt=0.0, lt=1.0, description="fraction of active weights dropped at the first update"
    )
    drop_schedule: DropSchedule = DropSchedule.cosine
    end_fraction: float = Field(
        default=0.75, gt=0.0, le=1.0, description="no mask updates after this fraction of the training steps"
    )

    @field_validator("init")
    @classmethod
    def _init_is_static(cls, name: str) -> str:
        choices = static_criteria()
        if name not in choices:
            raise ValueError(f"unknown static criterion {name!r} (choose from {', '.join(choices)})")
        return name


def drop_fraction_at(cfg: DynamicConfig, step: int, total_steps: int) -> float | None:
    """Fraction of active weights to drop after optimizer step `step` (1-based), None if no update."""
    return dynamic_drop_fraction(
        step,
        total_steps,
        update_every=cfg.update_every,
        end_fraction=cfg.end_fraction,
        drop_fraction=cfg.drop_fraction,
        schedule=cfg.drop_schedule,
    )


def top_k_among(scores: torch.Tensor, allowed: torch.Tensor, k: int) -> torch.Tensor:
    """Bool mask of the k highest `scores` where `allowed`; ties go to the lower position."""
    candidates = scores.detach().double().masked_fill(~allowed, -math.inf)
    return top_k_mask(candidates, k) & allowed


def drop_count(mask: torch.Tensor, fraction: float) -> int:
    """`counts.removed(active, fraction)`, but never more than there are inactive positions to regrow into."""
    active = int(mask.sum())
    return min(removed(active, fraction), mask.numel() - active)


@torch.no_grad()
def reset_optimizer_state(optimizer: torch.optim.Optimizer, param: torch.Tensor, where: torch.Tensor) -> None:
    """Zero every per-weight state tensor (SGD momentum, Adam moments) of `param` at `where`."""
    for value in optimizer.state.get(param, {}).values():
        if torch.is_tensor(value) and value.shape == param.shape:
            value[where] = 0


class MaskUpdater(TrainCallback, ABC):
    """Drop by magnitude, grow by `grow_scores`, on the shared schedule."""

    def __init__(self, config: DynamicConfig, generator: torch.Generator) -> None:
        self.config = config
        self.generator = generator
        self.updates: list[dict[str, Any]] = []

    @abstractmethod
    def grow_scores(self, state: TrainState, masks: Masks) -> dict[str, torch.Tensor]:
        """Per masked layer, a score per weight: the highest inactive ones are regrown."""

    def grow_counts(self, state: TrainState, masks: Masks, dropped: dict[str, int]) -> dict[str, int]:
        """How many to regrow per layer: as many as were dropped (per-layer sparsity fixed)."""
        return dropped

    def will_update(self, state: TrainState) -> bool:
        """Whether the step now starting ends with a mask update."""
        return drop_fraction_at(self.config, state.step + 1, state.total_steps) is not None

    def state_dict(self) -> dict[str, Any]:
        return {"updates": list(self.updates), "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.updates = list(state["updates"])
        self.generator.set_state(state["generator"])

    def on_step_end(self, state: TrainState) -> None:
        fraction = drop_fraction_at(self.config, state.step, state.total_steps)
        if fraction is not None:
            self.update(state, fraction)

    def update(self, state: TrainState, fraction: float) -> dict[str, Any]:
        modules = {n: m for n, m in prunable_modules(state.model).items() if hasattr(m, MASK_BUFFER)}
        masks = {n: getattr(m, MASK_BUFFER).bool() for n, m in modules.items()}
        counts = {n: drop_count(mask, fraction) for n, mask in masks.items()}
        dropped = {
            n: top_k_among(-modules[n].weight.detach().abs(), masks[n], counts[n]) for n in masks
        }  # smallest magnitudes among the active weights
        scores = self.grow_scores(state, masks)
        grow = self.grow_counts(state, masks, counts)
        grown = {n: top_k_among(scores[n], ~masks[n], grow[n]) for n in masks}
        with torch.no_grad():
            for n, module in modules.items():
                module.weight[grown[n]] = 0.0  # regrown weights start at exactly zero
                reset_optimizer_state(state.optimizer, module.weight, dropped[n] | grown[n])
        attach_masks(state.model, {n: (masks[n] & ~dropped[n]) | grown[n] for n in masks})
        check_masks_agree(state.model, f"mask update {len(self.updates) + 1} (step {state.step})")
        record = {
            "event": "mask_update",
            "update": len(self.updates) + 1,
            "step": state.step,
            "epoch": state.epoch + 1,
            "drop_fraction": fraction,
            "dropped": {n: int(d.sum()) for n, d in dropped.items()},
            "regrown": {n: int(g.sum()) for n, g in grown.items()},
        }
        state.log(record)
        self.updates.append(record)
        return record

    def summary(self) -> dict[str, Any]:
        """report.json's `mask_updates`: the schedule, totals per layer and one line per update."""
        layers = list(self.updates[0]["dropped"]) if self.updates else []
        return {
            "method": self.config.name,
            "schedule": self.config.model_dump(mode="json", exclude={"name"}),
            "count": len(self.updates),
            "dropped": sum(sum(u["dropped"].values()) for u in self.updates),
            "regrown": sum(sum(u["regrown"].values()) for u in self.updates),
            "per_layer": {
                n: {
                    "dropped": sum(u["dropped"][n] for u in self.updates),
                    "regrown": sum(u["regrown"][n] for u in self.updates),
                }
                for n in layers
            },
            "updates": [
                {
                    "step": u["step"],
                    "drop_fraction": u["drop_fraction"],
                    "dropped": sum(u["dropped"].values()),
                    "regrown": sum(u["regrown"].values()),
                }
                for u in self.updates
            ],
        }


class DynamicMethod(Method):
    """A dynamic method: the initial mask from `method.init`, then its `MaskUpdater`."""

    supports_structure = False

    config_class: ClassVar[type[DynamicConfig]]
    updater_class: ClassVar[type[MaskUpdater]]

    def select(self, ctx: SelectionContext) -> Masks:
        criterion = static_criteria()[self.config.init]
        return criterion(criterion.config_class()).select(ctx)

    def callbacks(self, ctx: SelectionContext) -> list[TrainCallback]:
        return [self.updater_class(self.config, ctx.generator)]

    def details(self, callbacks: list[TrainCallback]) -> dict[str, Any]:
        updaters = [c for c in callbacks if isinstance(c, MaskUpdater)]
        return {"mask_updates": updaters[0].summary()} if updaters else {}
