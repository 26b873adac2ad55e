"""The recipe's training loop bound to a run folder: what methods call (maybe repeatedly)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from paiexport.data import DataSplits
from paiexport.paths import RunPaths
from paiexport.training.callbacks import TrainCallback
from paiexport.training.checkpoint import TrainSession
from paiexport.training.compact import CompactTraining, compact_example, shrink_for_training
from paiexport.training.config import CheckpointChoice, TrainConfig
from paiexport.training.loop import TrainResult, train
from paiexport.training.trackers import TrackerCallback


@dataclass
class RecipeTrainer:
    """`train` with the recipe's `train:` section, batch size and seed; writes into `paths`."""

    train: TrainConfig
    batch_size: int
    seed: int
    data: DataSplits
    paths: RunPaths
    session: TrainSession | None = None  # checkpoints every phase; resumes a saved one
    trackers: TrackerCallback | None = None  # train.log_to; first, so it sees every logged record
    compacted: CompactTraining | None = None  # train.compact: the small model that is trained

    def __call__(
        self,
        model: nn.Module,
        callbacks: list[TrainCallback],
        *,
        epochs: int | None = None,
        tag: str = "",
        checkpoint: CheckpointChoice | None = None,
    ) -> TrainResult:
        cfg = self.train if epochs is None else self.train.model_copy(update={"epochs": epochs})
        if checkpoint is not None:
            cfg = cfg.model_copy(update={"checkpoint": checkpoint})
        if cfg.compact:  # static masks were just attached: train the exactly equivalent small model
            self.compacted = shrink_for_training(model, compact_example(self.data.train))
            model = self.compacted.model
        result = train(
            model,
            self.data,
            cfg,
            batch_size=self.batch_size,
            seed=self.seed,
            metrics_path=self.paths.metrics,
            checkpoint_dir=self.paths.phase(tag).folder,
            callbacks=[*([self.trackers] if self.trackers else []), *callbacks],
            session=self.session,
        )
        result.compact = self.compacted.report() if self.compacted else None
        return result
