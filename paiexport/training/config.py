"""The recipe's `train:` section, typed: optimizer, LR schedule, checkpoints, threads, precision."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator

from paiexport.config import StrictModel
from paiexport.training.lr_piecewise import LRSegment, LRSegmentField, WeightDecayChange
from paiexport.training.precision import PrecisionName
from paiexport.training.trackers import Tracker


class OptimizerName(StrEnum):
    sgd = "sgd"
    adam = "adam"
    adamw = "adamw"


class ScheduleName(StrEnum):
    constant = "constant"
    step = "step"
    cosine = "cosine"
    piecewise = "piecewise"  # absolute LRs from `segments` (SparseML's LR modifiers)


class CheckpointChoice(StrEnum):
    best = "best"  # highest validation accuracy
    last = "last"


class OptimizerConfig(StrictModel):
    name: OptimizerName = OptimizerName.sgd
    lr: float = Field(default=0.1, gt=0.0)
    momentum: float = Field(default=0.9, ge=0.0, lt=1.0, description="sgd momentum; adam beta1")
    weight_decay: float = Field(default=0.0, ge=0.0)
    nesterov: bool = False


class LRScheduleConfig(StrictModel):
    name: ScheduleName = ScheduleName.cosine
    warmup_epochs: int = Field(default=0, ge=0)
    milestones: list[int] = Field(default_factory=list, description="epochs where `step` decays")
    gamma: float = Field(default=0.1, gt=0.0, description="decay factor of `step`")
    segments: list[Annotated[LRSegment, LRSegmentField]] = Field(
        default_factory=list, description="`piecewise`: set / function / torch segments, in order"
    )


class TrainConfig(StrictModel):
    epochs: int = Field(default=30, ge=0)
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    lr_schedule: LRScheduleConfig = Field(default_factory=LRScheduleConfig)
    device: str = Field(default="cpu", pattern=r"^(cpu|cuda(:\d+)?)$")
    checkpoint: CheckpointChoice = CheckpointChoice.best
    weight_decay_schedule: list[WeightDecayChange] = Field(
        default_factory=list, description="weight decay changes by epoch; needs lr_schedule piecewise"
    )
    # static channel masks only: train the physically smaller model (paiexport.training.compact)
    compact: bool = False
    checkpoint_every: int = Field(default=1, ge=1, description="epochs between resumable checkpoints")
    threads: int | str = Field(default="auto", description="torch CPU threads: auto or a count")
    log_to: list[Tracker] = Field(default_factory=list, max_length=2, description="tensorboard, mlflow")
    precision: PrecisionName = PrecisionName.fp32
    channels_last: bool = Field(default=False, description="channels_last memory format (conv2d nets)")
    compile: bool = Field(default=False, description="train a torch.compile'd model")

    @model_validator(mode="after")
    def _decay_needs_piecewise(self) -> TrainConfig:
        if self.weight_decay_schedule and self.lr_schedule.name is not ScheduleName.piecewise:
            raise ValueError("train.weight_decay_schedule: needs train.lr_schedule.name: piecewise")
        return self

    @field_validator("threads", mode="before")
    @classmethod
    def _auto_or_count(cls, value: Any) -> int | str:
        # Checked by hand: a plain union would accept `true` as 1 and name its members in errors.
        if value == "auto" and isinstance(value, str):
            return value
        if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 1024:
            return value
        raise ValueError(f"must be auto or a thread count from 1 to 1024, got {str(value)[:20]!r}")
