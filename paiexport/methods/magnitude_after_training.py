"""Magnitude pruning after training: train dense, prune once by |θ|, fine-tune.

The classic pruning-after-training baseline PaI methods are measured against: the dense
network trains for `train.epochs`, the smallest trained weights are removed in one shot
(per `sparsity.distribution`), and the sparse network is fine-tuned for `finetune_epochs`
with the recipe's optimizer and a fresh LR schedule. Both phases are reported
(`phases` in report.json) and logged to metrics.jsonl.

Reference: Han et al. 2015, "Learning both Weights and Connections for Efficient
Neural Networks", https://arxiv.org/abs/1506.02626
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import Field

from paiexport.methods.base import FitResult, Method, MethodConfig, SelectionContext, Trainer
from paiexport.methods.post_training import magnitude_masks, stage_record
from paiexport.sparsity.masks import attach_masks
from paiexport.sparsity.types import Masks
from paiexport.training.callbacks import KeepPrunedZero, TrainCallback, TrainState
from paiexport.training.loop import TrainResult


class MagnitudeAfterTrainingConfig(MethodConfig):
    name: Literal["magnitude_after_training"] = "magnitude_after_training"
    finetune_epochs: int = Field(default=10, ge=0, description="epochs of sparse fine-tuning after pruning")


class _KeepLog(TrainCallback):
    def __init__(self) -> None:
        self.log: Callable[[dict[str, Any]], None] | None = None

    def on_train_begin(self, state: TrainState) -> None:
        self.log = state.log


class MagnitudeAfterTraining(Method):
    config_class = MagnitudeAfterTrainingConfig

    def select(self, ctx: SelectionContext) -> Masks | None:
        return None  # trains dense first

    def fit(self, ctx: SelectionContext, trainer: Trainer) -> FitResult:
        cfg: MagnitudeAfterTrainingConfig = self.config
        keep_log = _KeepLog()
        result = trainer(ctx.model, [keep_log], tag="dense")
        phases = [_record("dense", ctx, result, keep_log)]
        target, example = ctx.sparsity.target, ctx.data.train.x
        masks = magnitude_masks(ctx.model, ctx.sparsity, target, "magnitude_after_training", example)
        attach_masks(ctx.model, masks)
        result = trainer(ctx.model, [KeepPrunedZero(), keep_log], epochs=cfg.finetune_epochs, tag="finetune")
        phases.append(_record("finetune", ctx, result, keep_log))
        return FitResult(result, {"phases": phases})


def _record(phase: str, ctx: SelectionContext, result: TrainResult, keep_log: _KeepLog) -> dict[str, Any]:
    record = {"phase": phase, **stage_record(ctx, result)}
    if keep_log.log is not None:
        keep_log.log(record)
    return record
