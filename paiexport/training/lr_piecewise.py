"""`train.lr_schedule: {name: piecewise, segments: [...]}`: an absolute LR replayed per step.

The segments follow SparseML's LR modifiers (the SparseML reader converts to them), in
the order given (SparseML's manager order). Before optimizer step t, with epoch
e = t // S + (t % S) / S, every ready segment may overwrite the LR:

- set: at the first step with e >= start_epoch, lr = learning_rate.
- function: every step from start to the first step with e >= end: linear
  init + p·(final - init), or cosine from init to final, p = (e - start)/(end - start).
- torch: sets init_lr until it builds a torch scheduler (first step with e > 0) on the
  then-current LR, and steps it once per optimizer step, in steps: StepLR step_size·S,
  MultiStepLR milestones (m - start)·S, ExponentialLR = StepLR with one-epoch steps.
  Torch's schedulers multiply the *current* LR, so an LR set meanwhile is decayed from.
  No step at e == end_epoch; the LR then stays.

A replay, not a closed form, keeps SparseML's float and rounding quirks (Python round).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field

from paiexport.config import StrictModel

_EPS = sys.float_info.epsilon


class SetLR(StrictModel):
    kind: Literal["set"] = "set"
    start_epoch: float = -1.0
    learning_rate: float = Field(gt=0.0)

    @property
    def end_epoch(self) -> float:
        return -1.0


class FunctionLR(StrictModel):
    kind: Literal["function"] = "function"
    lr_func: Literal["linear", "cosine"]
    init_lr: float = Field(ge=0.0)
    final_lr: float = Field(ge=0.0)
    start_epoch: float
    end_epoch: float


class TorchLR(StrictModel):
    kind: Literal["torch"] = "torch"
    lr_class: Literal["StepLR", "MultiStepLR", "ExponentialLR"]
    lr_kwargs: dict[str, Any]
    init_lr: float = Field(default=0.0, ge=0.0)
    start_epoch: float
    end_epoch: float = -1.0

    def gamma(self) -> float:
        return float(self.lr_kwargs.get("gamma", 0.1))  # torch's default for StepLR/MultiStepLR


LRSegment = SetLR | FunctionLR | TorchLR
LRSegmentField = Field(discriminator="kind")


@dataclass
class _State:
    seg: LRSegment
    started: bool = False
    ended: bool = False
    scheduler_steps: int = 0
    scheduler_epoch: int | None = None  # torch's last_epoch; None until built

    def start_pending(self, e: float) -> bool:
        start = self.seg.start_epoch
        return not self.started and not self.ended and (e >= start >= 0.0 or start == -1.0)

    def end_pending(self, e: float) -> bool:
        return not self.ended and self.started and e >= self.seg.end_epoch >= 0.0

    def ready(self, e: float) -> bool:
        if self.start_pending(e) or self.end_pending(e):
            return True
        every_step = isinstance(self.seg, TorchLR | FunctionLR)
        return every_step and self.started and e > self.seg.start_epoch and not self.ended


def _function_lr(seg: FunctionLR, e: float) -> float:
    start = seg.start_epoch if seg.start_epoch > 0 else 0.0
    p = (e - start) / (seg.end_epoch - start)
    if seg.lr_func == "linear":
        return seg.init_lr + p * (seg.final_lr - seg.init_lr)
    low, high = sorted((seg.init_lr, seg.final_lr))
    shift = 0.0 if seg.final_lr < seg.init_lr else math.pi
    return math.cos(p * math.pi + shift) * (high - low) / 2 + (high - low) / 2 + low


def _torch_step(seg: TorchLR, lr: float, last_epoch: int, spe: int) -> float:
    """One chainable torch scheduler step (StepLR / MultiStepLR) at its new last_epoch."""
    if seg.lr_class == "MultiStepLR":
        miles = [round((m - seg.start_epoch) * spe) for m in seg.lr_kwargs["milestones"]]
        return lr * seg.gamma() ** miles.count(last_epoch)
    size = round((1.0 if seg.lr_class == "ExponentialLR" else seg.lr_kwargs["step_size"]) * spe)
    return lr * seg.gamma() if last_epoch != 0 and last_epoch % size == 0 else lr


def _scheduled_lr(state: _State, lr: float, e: float, spe: int) -> float:
    seg: TorchLR = state.seg
    if state.scheduler_epoch is None and seg.init_lr:
        lr = seg.init_lr
    if e <= _EPS:
        state.scheduler_steps -= 1  # SparseML: no scheduler step before the first optimizer step
        return lr
    if seg.end_epoch >= 0.0 and abs(seg.end_epoch - e) <= _EPS:
        return lr
    if state.scheduler_epoch is None:
        state.scheduler_epoch = 0
        state.scheduler_steps += round(e * spe)
    past_end = 0.0 <= seg.end_epoch < e
    global_step = round((seg.end_epoch if past_end else e) * spe)
    for _ in range(global_step - state.scheduler_steps):
        state.scheduler_epoch += 1
        lr = _torch_step(seg, lr, state.scheduler_epoch, spe)
    state.scheduler_steps = max(state.scheduler_steps, global_step)
    return lr


def _update(state: _State, lr: float, e: float, spe: int) -> float:
    seg = state.seg
    if isinstance(seg, SetLR):
        new = seg.learning_rate
    elif isinstance(seg, FunctionLR):
        new = _function_lr(seg, e)
    else:
        new = _scheduled_lr(state, lr, e, spe)
    if state.start_pending(e):
        state.started = True
    if state.end_pending(e):
        state.ended = True
    return new


def piecewise_trace(
    segments: Sequence[LRSegment], base_lr: float, steps: int, steps_per_epoch: int
) -> list[float]:
    """The LR of optimizer steps 0..steps-1; `base_lr` is the optimizer's LR before any segment."""
    states = [_State(s) for s in segments]
    lr, trace = base_lr, []
    for step in range(steps):
        e = float(step // steps_per_epoch) + float(step % steps_per_epoch) / float(steps_per_epoch)
        for state in states:
            if state.ready(e):
                lr = _update(state, lr, e, steps_per_epoch)
        trace.append(lr)
    return trace


class WeightDecayChange(StrictModel):
    """SparseML's SetWeightDecayModifier: from the first step with e >= start_epoch (-1: at once)."""

    start_epoch: float = -1.0
    weight_decay: float = Field(ge=0.0)


def weight_decay_trace(
    changes: Sequence[WeightDecayChange], steps: int, steps_per_epoch: int
) -> list[float | None]:
    """The weight decay set before each step (None: the optimizer's own, nothing changed yet)."""
    trace: list[float | None] = []
    current = None
    for step in range(steps):
        e = float(step // steps_per_epoch) + float(step % steps_per_epoch) / float(steps_per_epoch)
        for change in changes:
            if change.start_epoch == -1.0 or e >= change.start_epoch:
                current = change.weight_decay
        trace.append(current)
    return trace


class PiecewiseLR:
    """Sets each param group's LR (and weight decay) to the values of the coming step."""

    def __init__(self, optimizer: Any, trace: list[float], decay: list[float | None]) -> None:
        self.optimizer, self.trace, self.decay, self.step_index = optimizer, trace, decay, 0
        self._apply()

    def _apply(self) -> None:
        i = self.step_index
        if i < len(self.trace):
            for group in self.optimizer.param_groups:
                group["lr"] = self.trace[i]
                if self.decay[i] is not None:
                    group["weight_decay"] = self.decay[i]

    def step(self) -> None:
        self.step_index += 1
        self._apply()

    # Resumable like torch's schedulers (training/checkpoint.py saves and restores it).
    def state_dict(self) -> dict[str, int]:
        return {"step_index": self.step_index}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.step_index = int(state["step_index"])
        self._apply()
