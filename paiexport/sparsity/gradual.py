"""Pure schedule math of gradual pruning by parameter group (SparseML semantics, no torch).

Before optimizer step t the schedule sees epoch e = t // S + (t % S) / S (S = steps per
epoch). A group updates its masks at the first step with e >= start_epoch, then whenever
e >= last_update + update_frequency, and a last time at the first step with e >= end_epoch;
each update sets interpolate(e, start, end, init, final). Lives here, below methods and
recipe, so the native `gmp` groups and the SparseML reader share one implementation.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Sequence
from typing import Protocol

from paiexport.errors import UserError

_EPS = sys.float_info.epsilon
ALL_PRUNABLE = "__ALL_PRUNABLE__"
ALL = "__ALL__"


class GradualSchedule(Protocol):
    start_epoch: float
    end_epoch: float
    update_frequency: float
    init_sparsity: float
    inter_func: str


def resolve_params(
    patterns: Sequence[str], prunable_names: Sequence[str], where: str = "params"
) -> list[str]:
    """Prunable weight names matched by SparseML-style `params` (model order).

    `__ALL__` / `__ALL_PRUNABLE__`: every prunable weight; `re:` patterns use re.match
    (anchored at the start, as SparseML did); other strings are exact names.
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
    """Epochs of the mask updates of a GMP-style group, as SparseML's update_ready fires them."""
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
