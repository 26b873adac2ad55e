"""The learning rate at a step, as SparseML's manager set it (a step-by-step replay).

Before optimizer step t the manager visits its modifiers sorted by end_epoch (never-ending
last), then start_epoch, and each ready one may overwrite the LR. The rules per class,
read from SparseML's PyTorch modifiers:

- SetLearningRateModifier: at the first step with e >= start_epoch, lr = learning_rate.
- LearningRateFunctionModifier: every step from start to the first step with e >= end:
  linear init + p·(final - init), or cosine from init to final, p = (e - start)/(end - start).
- LearningRateModifier: sets init_lr until it builds a torch scheduler (first step with
  e > 0) on the then-current LR, and steps it once per optimizer step, in steps: StepLR
  step_size·S, MultiStepLR milestones (m - start)·S, ExponentialLR = StepLR with one-epoch
  steps. Torch's schedulers multiply the *current* LR, so an LR set meanwhile by another
  modifier is decayed from. No step at e == end_epoch; the LR then stays.

A replay, not a closed form, keeps SparseML's float and rounding quirks (Python round).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from paiexport.sparseml.modifiers import (
    LR,
    LearningRateFunctionModifier,
    LearningRateModifier,
    SetLearningRateModifier,
    SparseMLModifier,
)
from paiexport.sparseml.schedule import epoch_of_step

_EPS = sys.float_info.epsilon


def manager_order(mods: Sequence[SparseMLModifier]) -> list[SparseMLModifier]:
    """SparseML's modifier order: by end (-1 = never, last), then start.

    SparseML broke remaining ties by a hash of each modifier's properties; ties here keep
    recipe order (they only matter for two LR modifiers with the same start and end).
    """

    def key(mod: SparseMLModifier) -> tuple[float, float]:
        return (math.inf if mod.end_epoch == -1 else mod.end_epoch, mod.start_epoch)

    return sorted(mods, key=key)


@dataclass
class _State:
    mod: SparseMLModifier
    started: bool = False
    ended: bool = False
    scheduler_steps: int = 0
    scheduler_epoch: int | None = None  # torch's last_epoch; None until built
    extra: dict[str, float] = field(default_factory=dict)

    def start_pending(self, e: float) -> bool:
        start = self.mod.start_epoch
        return not self.started and not self.ended and (e >= start >= 0.0 or start == -1.0)

    def end_pending(self, e: float) -> bool:
        return not self.ended and self.started and e >= self.mod.end_epoch >= 0.0

    def ready(self, e: float) -> bool:
        if self.start_pending(e) or self.end_pending(e):
            return True
        every_step = isinstance(self.mod, LearningRateModifier | LearningRateFunctionModifier)
        return every_step and self.started and e > self.mod.start_epoch and not self.ended


def _function_lr(mod: LearningRateFunctionModifier, e: float) -> float:
    start = mod.start_epoch if mod.start_epoch > 0 else 0.0
    p = (e - start) / (mod.end_epoch - start)
    if mod.lr_func == "linear":
        return mod.init_lr + p * (mod.final_lr - mod.init_lr)
    low, high = sorted((mod.init_lr, mod.final_lr))
    shift = 0.0 if mod.final_lr < mod.init_lr else math.pi
    return math.cos(p * math.pi + shift) * (high - low) / 2 + (high - low) / 2 + low


def _torch_step(mod: LearningRateModifier, lr: float, last_epoch: int, spe: int) -> float:
    """One chainable torch scheduler step (StepLR / MultiStepLR) at its new last_epoch."""
    if mod.lr_class == "MultiStepLR":
        miles = [round((m - mod.start_epoch) * spe) for m in mod.lr_kwargs["milestones"]]
        return lr * mod.gamma() ** miles.count(last_epoch)
    size = round((1.0 if mod.lr_class == "ExponentialLR" else mod.lr_kwargs["step_size"]) * spe)
    return lr * mod.gamma() if last_epoch != 0 and last_epoch % size == 0 else lr


def _scheduled_lr(state: _State, lr: float, e: float, spe: int) -> float:
    mod: LearningRateModifier = state.mod
    if state.scheduler_epoch is None and mod.init_lr:
        lr = mod.init_lr
    if e <= _EPS:
        state.scheduler_steps -= 1  # SparseML: no scheduler step before the first optimizer step
        return lr
    if mod.end_epoch >= 0.0 and abs(mod.end_epoch - e) <= _EPS:
        return lr
    if state.scheduler_epoch is None:
        state.scheduler_epoch = 0
        state.scheduler_steps += round(e * spe)
    past_end = 0.0 <= mod.end_epoch < e
    global_step = round((mod.end_epoch if past_end else e) * spe)
    for _ in range(global_step - state.scheduler_steps):
        state.scheduler_epoch += 1
        lr = _torch_step(mod, lr, state.scheduler_epoch, spe)
    state.scheduler_steps = max(state.scheduler_steps, global_step)
    return lr


def _update(state: _State, lr: float, e: float, spe: int) -> float:
    mod = state.mod
    if isinstance(mod, SetLearningRateModifier):
        new = mod.learning_rate
    elif isinstance(mod, LearningRateFunctionModifier):
        new = _function_lr(mod, e)
    else:
        new = _scheduled_lr(state, lr, e, spe)
    if state.start_pending(e):
        state.started = True
    if state.end_pending(e):
        state.ended = True
    return new


def lr_trace(
    mods: Sequence[SparseMLModifier], base_lr: float, steps: int, steps_per_epoch: int
) -> list[float]:
    """The LR of optimizer steps 0..steps-1; `base_lr` is the optimizer's LR before any modifier."""
    states = [_State(m) for m in manager_order([m for m in mods if isinstance(m, LR)])]
    lr, trace = base_lr, []
    for step in range(steps):
        e = epoch_of_step(step, steps_per_epoch)
        for state in states:
            if state.ready(e):
                lr = _update(state, lr, e, steps_per_epoch)
        trace.append(lr)
    return trace


def lr_at(mods: Sequence[SparseMLModifier], base_lr: float, step: int, steps_per_epoch: int) -> float:
    """The LR SparseML would use for optimizer step `step` (0-based)."""
    return lr_trace(mods, base_lr, step + 1, steps_per_epoch)[-1]
