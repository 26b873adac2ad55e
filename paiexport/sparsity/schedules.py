"""Mask-update schedules, all in one place: pure functions of step counts and densities.

- GMP: Zhu & Gupta's cubic sparsity schedule and its update steps.
- Dynamic (SET, RigL, SNFS): update every N steps until a stop fraction, with a constant,
  linear or cosine-decayed drop fraction (Evci et al. 2020, Section 3).
- Iterative rounds (static criteria with `rounds` > 1): exponential or linear densities.
- LTH levels: exponential densities, or a constant pruning rate clipped at the target.

References: Zhu & Gupta 2017, https://arxiv.org/abs/1710.01878; Evci et al. 2020,
https://arxiv.org/abs/1911.11134; Tanaka et al. 2020, https://arxiv.org/abs/2006.05467;
Frankle & Carbin 2019, https://arxiv.org/abs/1803.03635
"""

from __future__ import annotations

import math
from enum import StrEnum

from paiexport.errors import UserError


class RoundSchedule(StrEnum):
    exponential = "exponential"  # density d^(k/n): each round removes the same fraction of the rest
    linear = "linear"  # density 1 - (1 - d) k/n: each round removes the same count


class DropSchedule(StrEnum):
    cosine = "cosine"
    constant = "constant"
    linear = "linear"


def cubic_sparsity(t: int, t0: int, t_end: int, s_i: float, s_f: float) -> float:
    """Zhu & Gupta's s_t = s_f + (s_i − s_f)(1 − (t − t0)/(t_end − t0))³, held at s_i
    before t0 and at s_f after t_end."""
    if t >= t_end:
        return s_f
    if t <= t0:
        return s_i
    return s_f + (s_i - s_f) * (1.0 - (t - t0) / (t_end - t0)) ** 3


def gmp_update_due(t: int, t0: int, t_end: int, every: int) -> bool:
    """GMP recomputes the mask every `every` steps from t0, and at t_end itself."""
    return t0 <= t <= t_end and ((t - t0) % every == 0 or t == t_end)


def dynamic_drop_fraction(
    step: int,
    total_steps: int,
    *,
    update_every: int,
    end_fraction: float,
    drop_fraction: float,
    schedule: DropSchedule,
) -> float | None:
    """Fraction of active weights to drop after optimizer step `step` (1-based), None if no
    update: updates fall on multiples of `update_every` strictly before `end_fraction` of
    the training; the fraction decays from `drop_fraction` by `schedule`."""
    end = end_fraction * total_steps
    if step <= 0 or step % update_every or step >= end:
        return None
    progress = step / end
    if schedule is DropSchedule.constant:
        return drop_fraction
    if schedule is DropSchedule.linear:
        return drop_fraction * (1.0 - progress)
    return drop_fraction / 2 * (1.0 + math.cos(math.pi * progress))


def round_densities(density: float, rounds: int, schedule: RoundSchedule) -> list[float]:
    """Density after each of `rounds` rounds; the last one is exactly `density`."""
    if schedule is RoundSchedule.exponential:
        steps = [density ** (k / rounds) for k in range(1, rounds)]
    else:
        steps = [1.0 - (1.0 - density) * k / rounds for k in range(1, rounds)]
    return [*steps, density]


def level_densities(density: float, levels: int, rate: float | None) -> list[float]:
    """LTH: density after each level; the last one is exactly `density`.

    Without `rate`: d^(k/n). With `rate`: (1 − rate)^k, stopping at the first level that
    reaches `density` (clipped to it); too few levels to get there is a recipe error.
    """
    if rate is None:
        return round_densities(density, levels, RoundSchedule.exponential)
    densities = []
    for k in range(1, levels + 1):
        reached = (1.0 - rate) ** k <= density * (1 + 1e-9)
        densities.append(density if reached else (1.0 - rate) ** k)
        if reached:
            return densities
    needed = math.ceil(math.log(density) / math.log(1.0 - rate) - 1e-9)
    raise UserError(
        f"method.levels: {levels} levels pruning {rate:.0%} each reach sparsity "
        f"{1 - densities[-1]:.1%}, short of sparsity.target {1 - density:.1%}; use levels >= {needed}"
    )
