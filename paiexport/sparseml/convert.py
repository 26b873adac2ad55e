"""SparseMLPlan: a SparseML recipe resolved against a model, in the form the native side consumes.

Proposal for the native recipe extension (not built yet; to be wired after issue #10):

    method:
      name: gmp
      groups:                      # one per SparseML pruning modifier (or final_sparsity key)
        - params: [conv1.weight, "re:layer1\\..*"]   # SparseML patterns, resolved at run time
          init_sparsity: 0.05
          final_sparsity: 0.8
          start_epoch: 1.0         # fractional epochs, as SparseML
          end_epoch: 8.0
          update_frequency: 0.5    # epochs, replacing update_every (steps) for these groups
          inter_func: cubic        # cubic | linear
          allocation: layer        # layer | global (GlobalMagnitudePruningModifier)
          leave_enabled: true
        - {params: [fc.weight], constant: true}   # ConstantPruningModifier: keep the initial mask
      # weights in no group stay dense (today's gmp prunes every prunable weight)
    train:
      epochs: 10                   # SparseML max_epochs
      optimizer: {weight_decay: 0.0001}
      weight_decay_schedule: [{start_epoch: 2.0, weight_decay: 0.0}]   # SetWeightDecayModifier
      lr_schedule:
        name: piecewise            # replaces lr_factor's warmup/cosine/step for this run
        segments:                  # in SparseML manager order, replayed per step
          - {kind: set, start_epoch: 0.0, learning_rate: 0.008}
          - {kind: function, lr_func: cosine, init_lr: 0.008, final_lr: 0.0001,
             start_epoch: 1.0, end_epoch: 8.0}
          - {kind: torch, lr_class: MultiStepLR, lr_kwargs: {milestones: [3], gamma: 0.1},
             init_lr: 0.01, start_epoch: 0.0, end_epoch: -1}
    export: {int8: static}         # from QuantizationModifier (post-training, not QAT)

`piecewise` gives an absolute LR, not a factor: lr_schedule.lr_trace once per run (a
replay, O(steps); base = optimizer.lr), indexed by step. Mask updates come from
schedule.pruning_update_epochs, so they fall on the same steps as in SparseML.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import Field

from paiexport.config import StrictModel
from paiexport.errors import UserError
from paiexport.sparseml.load import RawModifier, SparseMLRecipe, load_sparseml
from paiexport.sparseml.lr_schedule import lr_at, manager_order
from paiexport.sparseml.modifiers import (
    GROUP_SCHEDULE_FIELDS,
    LR,
    ConstantPruningModifier,
    GlobalMagnitudePruningModifier,
    GMPruningModifier,
    LearningRateFunctionModifier,
    LearningRateModifier,
    QuantizationModifier,
    SetLearningRateModifier,
    SetWeightDecayModifier,
    SparseMLModifier,
    parse_modifiers,
)
from paiexport.sparseml.schedule import pruning_update_epochs, resolve_params, sparsity_at, total_epochs

LRSegment = SetLearningRateModifier | LearningRateModifier | LearningRateFunctionModifier


class PruningGroup(StrictModel):
    kind: Literal["layer", "global", "constant"]
    origin: str = Field(
        description="the modifier it came from, e.g. 'pruning_modifiers[0] GMPruningModifier'"
    )
    params: list[str] = Field(min_length=1)
    init_sparsity: float = 0.0
    final_sparsity: float | None = None  # None: constant pruning keeps the initial mask
    start_epoch: float = -1.0
    end_epoch: float = -1.0
    update_frequency: float = -1.0
    inter_func: Literal["cubic", "linear"] = "cubic"
    leave_enabled: bool = True

    def update_epochs(self, steps_per_epoch: int, total_steps: int | None = None) -> list[float]:
        return [] if self.kind == "constant" else pruning_update_epochs(self, steps_per_epoch, total_steps)

    def sparsity_at(self, epoch: float, steps_per_epoch: int) -> float | None:
        """Target sparsity of each param (layer) or of all params together (global); None: constant."""
        if self.final_sparsity is None:
            return None
        return sparsity_at(self, self.final_sparsity, epoch, steps_per_epoch)


class WeightDecayChange(StrictModel):
    start_epoch: float
    weight_decay: float


class SparseMLPlan(StrictModel):
    source: str
    epochs: int
    pruning: list[PruningGroup] = Field(default_factory=list)
    dense_params: list[str] = Field(default_factory=list, description="prunable weights no modifier names")
    lr_segments: list[LRSegment] = Field(default_factory=list, description="LR modifiers in manager order")
    weight_decay: list[WeightDecayChange] = Field(default_factory=list)
    quantize: bool = False
    notes: list[str] = Field(default_factory=list)

    def lr_at(self, step: int, steps_per_epoch: int, base_lr: float) -> float:
        return lr_at(self.lr_segments, base_lr, step, steps_per_epoch)


def _groups(raw: RawModifier, mod: SparseMLModifier, names: Sequence[str], source: str) -> list[PruningGroup]:
    where = f"{source}: {raw.where} {raw.name}"
    if isinstance(mod, ConstantPruningModifier):
        params = resolve_params(mod.params, names, f"{where}.params")
        return [
            PruningGroup(
                kind="constant",
                origin=f"{raw.where} {raw.name}",
                params=params,
                start_epoch=mod.start_epoch,
                end_epoch=mod.end_epoch,
            )
        ]
    kind = "global" if isinstance(mod, GlobalMagnitudePruningModifier) else "layer"
    fields = mod.model_dump(include=set(GROUP_SCHEDULE_FIELDS))
    return [
        PruningGroup(
            kind=kind,
            origin=f"{raw.where} {raw.name}",
            final_sparsity=final,
            params=resolve_params(patterns, names, f"{where}.params"),
            **fields,
        )
        for final, patterns in mod.groups()
    ]


def _check_disjoint(groups: list[PruningGroup], source: str) -> None:
    owner: dict[str, str] = {}
    for group in groups:
        for name in group.params:
            if name in owner:
                raise UserError(f"{source}: {name} is pruned by both {owner[name]} and {group.origin}")
            owner[name] = group.origin


def _notes(plan: SparseMLPlan) -> list[str]:
    notes = []
    if plan.quantize:
        notes.append(
            "QuantizationModifier: exported as int8 after training (post-training quantization, "
            "not quantization-aware training); its QAT epochs are not used"
        )
    for group in plan.pruning:
        if group.final_sparsity is not None and group.end_epoch >= plan.epochs:
            notes.append(
                f"{group.origin}: end_epoch {group.end_epoch} is not before the last epoch "
                f"{plan.epochs}; as in SparseML, final_sparsity is never reached"
            )
        if not group.leave_enabled:
            notes.append(f"{group.origin}: leave_enabled false: masks are released after end_epoch")
    return notes


def convert(recipe: SparseMLRecipe, prunable_names: Sequence[str]) -> SparseMLPlan:
    """Type, resolve and schedule a loaded recipe against the model's prunable weight names."""
    mods = parse_modifiers(recipe)
    groups: list[PruningGroup] = []
    for raw, mod in zip(recipe.modifiers, mods, strict=True):
        if isinstance(mod, GMPruningModifier | ConstantPruningModifier):
            groups += _groups(raw, mod, prunable_names, recipe.source)
    _check_disjoint(groups, recipe.source)
    pruned = {n for g in groups for n in g.params}
    plan = SparseMLPlan(
        source=recipe.source,
        epochs=total_epochs(mods, recipe.source),
        pruning=groups,
        dense_params=[n for n in prunable_names if n not in pruned],
        lr_segments=manager_order([m for m in mods if isinstance(m, LR)]),
        weight_decay=[
            WeightDecayChange(start_epoch=m.start_epoch, weight_decay=m.weight_decay)
            for m in manager_order(mods)
            if isinstance(m, SetWeightDecayModifier)
        ],
        quantize=any(isinstance(m, QuantizationModifier) for m in mods),
    )
    plan.notes = _notes(plan)
    return plan


def convert_file(path: Path, prunable_names: Sequence[str]) -> SparseMLPlan:
    return convert(load_sparseml(path), prunable_names)
