"""The learning rate at a step, as SparseML's manager set it.

Before optimizer step t the manager visits its modifiers sorted by end_epoch (never-ending
last), then start_epoch, and each ready one may overwrite the LR. The modifiers become
native `piecewise` segments (training/lr_piecewise.py holds the per-class rules and the
step-by-step replay), so a converted recipe and this reader share one implementation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from paiexport.sparseml.modifiers import (
    LR,
    LearningRateFunctionModifier,
    LearningRateModifier,
    SetLearningRateModifier,
    SparseMLModifier,
)
from paiexport.training.lr_piecewise import FunctionLR, LRSegment, SetLR, TorchLR, piecewise_trace


def manager_order(mods: Sequence[SparseMLModifier]) -> list[SparseMLModifier]:
    """SparseML's modifier order: by end (-1 = never, last), then start.

    SparseML broke remaining ties by a hash of each modifier's properties; ties here keep
    recipe order (they only matter for two LR modifiers with the same start and end).
    """

    def key(mod: SparseMLModifier) -> tuple[float, float]:
        return (math.inf if mod.end_epoch == -1 else mod.end_epoch, mod.start_epoch)

    return sorted(mods, key=key)


def to_segment(mod: SparseMLModifier) -> LRSegment:
    """The native piecewise segment of one SparseML LR modifier."""
    if isinstance(mod, SetLearningRateModifier):
        return SetLR(start_epoch=mod.start_epoch, learning_rate=mod.learning_rate)
    if isinstance(mod, LearningRateFunctionModifier):
        fields = mod.model_dump(include={"lr_func", "init_lr", "final_lr", "start_epoch", "end_epoch"})
        return FunctionLR(**fields)
    if isinstance(mod, LearningRateModifier):
        fields = mod.model_dump(include={"lr_class", "lr_kwargs", "init_lr", "start_epoch", "end_epoch"})
        return TorchLR(**fields)
    raise TypeError(f"{type(mod).__name__} is not an LR modifier")


def lr_segments(mods: Sequence[SparseMLModifier]) -> list[LRSegment]:
    """The LR modifiers as piecewise segments, in manager order."""
    return [to_segment(m) for m in manager_order([m for m in mods if isinstance(m, LR)])]


def lr_trace(
    mods: Sequence[SparseMLModifier], base_lr: float, steps: int, steps_per_epoch: int
) -> list[float]:
    """The LR of optimizer steps 0..steps-1; `base_lr` is the optimizer's LR before any modifier."""
    return piecewise_trace(lr_segments(mods), base_lr, steps, steps_per_epoch)


def lr_at(mods: Sequence[SparseMLModifier], base_lr: float, step: int, steps_per_epoch: int) -> float:
    """The LR SparseML would use for optimizer step `step` (0-based)."""
    return lr_trace(mods, base_lr, step + 1, steps_per_epoch)[-1]
