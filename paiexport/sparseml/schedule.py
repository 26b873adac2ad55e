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
import re
import sys
from collections.abc import Iterable, Sequence
from typing import Protocol

from paiexport.errors import UserError
from paiexport.sparseml.modifiers import ALL, ALL_PRUNABLE, SparseMLModifier

_EPS = sys.float_info.epsilon


class GradualSchedule(Protocol):
    """What the sparsity schedule reads: a GMP-style modifier or a plan's pruning group."""

    start_epoch: float
    end_epoch: float
    update_frequency: float
    init_sparsity: float
    inter_func: str


def resolve_params(
    patterns: Sequence[str], prunable_names: Sequence[str], where: str = "params"
) -> list[str]:
    """Prunable weight names matched by SparseML `params` (model order).

    `__ALL__` and `__ALL_PRUNABLE__` are every prunable weight (paiexport prunes Conv/Linear
    weights only, so SparseML's "all parameters" cannot include biases); `re:` patterns
    use re.match (anchored at the start, as SparseML did); other strings are exact names.
    """
    if ALL in patterns or ALL_PRUNABLE in patterns:
        return list(prunable_names)
    chosen: set[str] = set()
    for pattern in patterns:
        if pattern.startswith("re:"):
            try:
                regex = re.compile(pattern[3:])
            except re.error as exc:
                raise UserError(f"{where}: '{pattern}' is not a valid regular expression ({exc})") from None
            found = {n for n in prunable_names if regex.match(n)}
        else:
            found = {pattern} & set(prunable_names)
        if not found:
            raise UserError(f"{where}: '{pattern}' matches no prunable weight of the model")
        chosen |= found
    return [n for n in prunable_names if n in chosen]


def interpolate(x: float, x0: float, x1: float, y0: float, y1: float, inter_func: str) -> float:
    """SparseML's interpolate: y0 + (y1 - y0)·f((x - x0)/(x1 - x0)), cubic f(p) = 1 - (1 - p)³."""
    p = (x - x0) / (x1 - x0)
    if inter_func == "linear":
        y = p
    elif inter_func == "cubic":
        y = 1 - (1 - p) ** 3
    else:
        raise ValueError(f"unsupported inter_func {inter_func!r}")
    if y <= _EPS:
        return y0
    if y >= 1.0 - _EPS:
        return y1
    return y * (y1 - y0) + y0


def epoch_of_step(step: int, steps_per_epoch: int) -> float:
    """The (fractional) epoch SparseML's wrapped optimizer reports before step `step`."""
    return float(step // steps_per_epoch) + float(step % steps_per_epoch) / float(steps_per_epoch)


def pruning_update_epochs(
    mod: GradualSchedule, steps_per_epoch: int, total_steps: int | None = None
) -> list[float]:
    """Epochs of the mask updates of a GMP-style modifier, as SparseML's update_ready fires them."""
    start, end, every = mod.start_epoch, mod.end_epoch, mod.update_frequency
    last_step = total_steps if total_steps is not None else math.ceil(end * steps_per_epoch) + 1
    updates: list[float] = []
    started = False
    for step in range(last_step):
        e = epoch_of_step(step, steps_per_epoch)
        start_pending = not started and e >= start
        regular = started and e > start and e >= updates[-1] + every
        end_pending = (started or start_pending) and e >= end
        if start_pending or regular or end_pending:
            updates.append(e)
            started = True
        if end_pending:
            break
    return updates


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


def pruned_count(numel: int, sparsity: float) -> int:
    """Weights SparseML's unstructured mask zeroes in a tensor (or, global, in all stacked)."""
    return round(numel * sparsity)


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
