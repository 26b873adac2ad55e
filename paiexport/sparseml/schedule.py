"""Pure schedule functions with SparseML's semantics (no torch, no model).

The training loop SparseML drove: before optimizer step t the manager calls every
modifier with epoch e = t // S + (t % S) / S (S = steps per epoch). A pruning modifier
updates its masks at the first step with e >= start_epoch, then whenever
e >= last_update + update_frequency (the *actual* last update epoch, floats and all),
and a last time at the first step with e >= end_epoch. Each update sets the sparsity
interpolate(e, start, end, init, final): that is why updates fall on the step grid,
not exactly on start + k·update_frequency when those are not whole steps.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from paiexport.errors import UserError
from paiexport.sparseml.modifiers import SparseMLModifier
from paiexport.sparsity.counts import removed as pruned_count
from paiexport.sparsity.gradual import (
    GradualSchedule,
    epoch_of_step,
    interpolate,
    pruning_update_epochs,
    resolve_params,
)

__all__ = [
    "GradualSchedule",
    "epoch_of_step",
    "global_pruned_count",
    "interpolate",
    "pruned_count",
    "pruning_update_epochs",
    "resolve_params",
    "sparsity_at",
    "total_epochs",
]


def sparsity_at(mod: GradualSchedule, final_sparsity: float, epoch: float, steps_per_epoch: int) -> float:
    """Mask sparsity of a parameter of `mod` during `epoch` (fractional): the last update's target.

    0.0 before the first update (no mask yet). After end_epoch the final mask stays only
    with leave_enabled; without it SparseML stops masking and the zeros may regrow.
    """
    done = [e for e in pruning_update_epochs(mod, steps_per_epoch) if e <= epoch]
    if not done:
        return 0.0
    return interpolate(
        done[-1], mod.start_epoch, mod.end_epoch, mod.init_sparsity, final_sparsity, mod.inter_func
    )


def global_pruned_count(numels: Iterable[int], sparsity: float) -> int:
    """Global magnitude: one target over the params stacked; per-layer shares follow |w|."""
    return pruned_count(sum(numels), sparsity)


def total_epochs(mods: Sequence[SparseMLModifier], source: str = "recipe") -> int:
    """SparseML's max_epochs: the largest ceil(start) or ceil(end) over all modifiers.

    With an EpochRangeModifier this is its end_epoch (other modifiers end inside it);
    without one it is the last modifier's end.
    """
    ends = [math.ceil(m.start_epoch) for m in mods if m.start_epoch > -1]
    ends += [math.ceil(m.end_epoch) for m in mods if m.end_epoch > -1]
    if not ends or max(ends) <= 0:
        raise UserError(f"{source}: no modifier gives an epoch count; add an EpochRangeModifier")
    return max(ends)
