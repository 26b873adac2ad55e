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

from paiexport.methods.base import Method, MethodConfig, SelectionContext, Trainer
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

    def __init__(self, config: MagnitudeAfterTrainingConfig) -> None:
        super().__init__(config)
        self.phases: list[dict[str, Any]] = []

    def select(self, ctx: SelectionContext) -> Masks | None:
        return None  # trains dense first

    def fit(self, ctx: SelectionContext, trainer: Trainer) -> TrainResult:
        cfg: MagnitudeAfterTrainingConfig = self.config
        keep_log = _KeepLog()
        result = trainer(ctx.model, [keep_log], tag="dense")
        self._record("dense", ctx, result, keep_log)
        target, example = ctx.sparsity.target, ctx.data.train.x
        masks = magnitude_masks(ctx.model, ctx.sparsity, target, "magnitude_after_training", example)
        attach_masks(ctx.model, masks)
        result = trainer(ctx.model, [KeepPrunedZero(), keep_log], epochs=cfg.finetune_epochs, tag="finetune")
        self._record("finetune", ctx, result, keep_log)
        return result

    def _record(self, phase: str, ctx: SelectionContext, result: TrainResult, keep_log: _KeepLog) -> None:
        record = {"phase": phase, **stage_record(ctx, result)}
        self.phases.append(record)
        if keep_log.log is not None:
            keep_log.log(record)

    def report(self) -> dict[str, Any]:
        return {"phases": self.phases}
