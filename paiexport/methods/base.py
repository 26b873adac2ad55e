"""What every pruning method is: typed options plus how it picks (and updates) masks."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import torch
from pydantic import Field
from torch import nn

from paiexport.sparsity.allocation import SparsityConfig
from paiexport.sparsity.collapse import check_collapse
from paiexport.config import StrictModel
from paiexport.data import DataSplits
from paiexport.sparsity.masks import KeepPrunedZero, Masks, attach_masks, prunable_weights
from paiexport.methods.static import (
    Ablation,
    RoundSchedule,
    iterative_masks,
    reinitialize,
    shuffle_within_layers,
)
from paiexport.seeding import stream
from paiexport.training.loop import CheckpointChoice, TrainCallback, TrainResult


class MethodConfig(StrictModel):
    """Base of each method's `method:` section; subclasses narrow `name` to a Literal."""

    name: str


class ScoreConfig(MethodConfig):
    """Options every static criterion shares (see `paiexport.methods.static`)."""

    rounds: int = Field(default=1, ge=1, description="prune iteratively, rescoring every round")
    schedule: RoundSchedule = Field(
        default=RoundSchedule.exponential, description="density per round: d^(k/n) or linear"
    )
    ablation: Ablation = Field(default=Ablation.none, description="sanity check: random_ticket|reinit|invert")


@dataclass
class SelectionContext:
    """Everything a method may look at when choosing masks at initialization."""

    model: nn.Module
    data: DataSplits
    sparsity: SparsityConfig
    batch_size: int
    generator: torch.Generator = field(default_factory=lambda: stream(0, "selection"))

    def prunable(self) -> dict[str, torch.Tensor]:
        return prunable_weights(self.model, self.sparsity.exclude)

    def train_batches(self, count: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The first `count` shuffled training batches (seeded by the context's generator)."""
        batches = []
        for batch in self.data.train.batches(self.batch_size, self.generator):
            batches.append(batch)
            if len(batches) == count:
                break
        return batches


class Trainer(Protocol):
    """Runs the recipe's training loop on `model` (see `paiexport.pipeline.RecipeTrainer`)."""

    def __call__(
        self,
        model: nn.Module,
        callbacks: list[TrainCallback],
        *,
        epochs: int | None = None,
        tag: str = "",
        checkpoint: CheckpointChoice | None = None,
    ) -> TrainResult: ...


class Method(ABC):
    """A pruning method.

    The default `fit` is the PaI recipe: `select` masks once at initialization, attach
    them, and train with the method's `callbacks` (dynamic methods update masks there).
    Methods that prune after training (LTH, magnitude after training) or never train
    weights (edge-popup) override `fit`. Whatever `fit` leaves attached is exported.
    """

    config_class: ClassVar[type[MethodConfig]]
    trains_weights: ClassVar[bool] = True
    # Methods that move or learn masks weight by weight cannot keep channel / N:M structure.
    supports_structure: ClassVar[bool] = True

    def __init__(self, config: MethodConfig) -> None:
        self.config = config

    @abstractmethod
    def select(self, ctx: SelectionContext) -> Masks | None:
        """Masks to attach before training, or None to train dense."""

    def callbacks(self, ctx: SelectionContext) -> list[TrainCallback]:
        return []

    def fit(self, ctx: SelectionContext, trainer: Trainer) -> TrainResult:
        return self.train_with_masks(ctx, self.select(ctx), trainer)

    def train_with_masks(self, ctx: SelectionContext, masks: Masks | None, trainer: Trainer) -> TrainResult:
        """Check for layer collapse, attach `masks` (None: dense) and train with the callbacks."""
        callbacks = self.callbacks(ctx)
        if masks is not None:
            check_collapse(masks, ctx.sparsity.allow_layer_collapse, f"{self.config.name} selection")
            attach_masks(ctx.model, masks)
            callbacks = [KeepPrunedZero(), *callbacks]
        return trainer(ctx.model, callbacks)

    def report(self) -> dict[str, Any]:
        """Extra top-level keys for report.json (e.g. `levels`, `mask_updates`)."""
        return {}


class ScoreMethod(Method):
    """A static criterion: score every prunable weight, keep the highest (see `allocation`).

    With a `ScoreConfig`, every criterion gets iterative `rounds` and the `ablation`
    sanity checks from `paiexport.methods.static`.
    """

    @abstractmethod
    def scores(self, ctx: SelectionContext) -> dict[str, torch.Tensor]:
        """Importance per weight (higher = keep), keyed like `ctx.prunable()`."""

    @property
    def options(self) -> ScoreConfig:
        if isinstance(self.config, ScoreConfig):
            return self.config
        return ScoreConfig(name=self.config.name)

    def select_rounds(self, ctx: SelectionContext) -> list[Masks]:
        """The masks after every selection round (the last one is the selection)."""
        opts = self.options
        invert = opts.ablation is Ablation.invert
        return iterative_masks(self.scores, ctx, opts.rounds, opts.schedule, invert)

    def select(self, ctx: SelectionContext) -> Masks:
        masks = self.select_rounds(ctx)[-1]
        if self.options.ablation is Ablation.random_ticket:
            masks = shuffle_within_layers(masks, ctx.generator)
        return masks

    def fit(self, ctx: SelectionContext, trainer: Trainer) -> TrainResult:
        masks = self.select(ctx)
        if self.options.ablation is Ablation.reinit:
            reinitialize(ctx.model)  # same mask, fresh initial weights
        return self.train_with_masks(ctx, masks, trainer)


@contextmanager
def preserved_state(model: nn.Module) -> Iterator[nn.Module]:
    """Run scoring passes without leaving a trace (BN running stats, grads, train/eval mode)."""
    state = {k: v.clone() for k, v in model.state_dict().items()}
    was_training = model.training
    try:
        yield model
    finally:
        model.load_state_dict(state)
        model.train(was_training)
        model.zero_grad(set_to_none=True)
