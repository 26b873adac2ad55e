"""What every pruning method is: typed options plus how it picks (and updates) masks."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import torch
from torch import nn

from paiexport.config import StrictModel
from paiexport.data import DataSplits
from paiexport.inputs import Inputs
from paiexport.seeding import stream
from paiexport.sparsity.collapse import check_collapse
from paiexport.sparsity.masks import attach_masks, prunable_weights
from paiexport.sparsity.types import LayerTargets, Masks, SparsityConfig
from paiexport.training.callbacks import KeepPrunedZero, TrainCallback
from paiexport.training.config import CheckpointChoice
from paiexport.training.loop import TrainResult


class MethodConfig(StrictModel):
    """Base of each method's `method:` section; subclasses narrow `name` to a Literal."""

    name: str


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

    def train_batches(self, count: int) -> list[tuple[Inputs, torch.Tensor]]:
        """The first `count` shuffled training batches (seeded by the context's generator)."""
        batches = []
        for batch in self.data.train.batches(self.batch_size, self.generator):
            batches.append(batch)
            if len(batches) == count:
                break
        return batches


class Trainer(Protocol):
    """Runs the recipe's training loop on `model` (see `paiexport.training.trainer.RecipeTrainer`)."""

    def __call__(
        self,
        model: nn.Module,
        callbacks: list[TrainCallback],
        *,
        epochs: int | None = None,
        tag: str = "",
        checkpoint: CheckpointChoice | None = None,
    ) -> TrainResult: ...


@dataclass
class FitResult:
    """What `fit` did: its last training run and the method's report.json details
    (`method_details`, e.g. `mask_updates`, `levels`), returned rather than kept on the method."""

    train: TrainResult
    details: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # report.json `notes` (e.g. a converted recipe's)


class Method(ABC):
    """A pruning method.

    The default `fit` is the PaI recipe: `select` masks once at initialization, attach
    them, and train with the method's `callbacks` (dynamic methods update masks there).
    Methods that prune after training (LTH, magnitude after training) or never train
    weights (edge-popup) override `fit`. Whatever `fit` leaves attached is exported.
    """

    config_class: ClassVar[type[MethodConfig]]
    trains_weights: ClassVar[bool] = True
    # False for the dense baseline: it ignores `sparsity.target` (effective target 0) and is
    # what a sweep adds as the reference point. Read this, never the method's name.
    prunes: ClassVar[bool] = True
    # Methods that move or learn masks weight by weight cannot keep channel / N:M structure.
    supports_structure: ClassVar[bool] = True

    def __init__(self, config: MethodConfig) -> None:
        self.config = config

    @abstractmethod
    def select(self, ctx: SelectionContext) -> Masks | None:
        """Masks to attach before training, or None to train dense."""

    def callbacks(self, ctx: SelectionContext) -> list[TrainCallback]:
        return []

    def fit(self, ctx: SelectionContext, trainer: Trainer) -> FitResult:
        return self.train_with_masks(ctx, self.select(ctx), trainer)

    def train_with_masks(self, ctx: SelectionContext, masks: Masks | None, trainer: Trainer) -> FitResult:
        """Check for layer collapse, attach `masks` (None: dense) and train with the callbacks."""
        callbacks = self.callbacks(ctx)
        keep: list[TrainCallback] = []
        if masks is not None:
            check_collapse(masks, ctx.sparsity.allow_layer_collapse, f"{self.config.name} selection")
            attach_masks(ctx.model, masks)
            keep = [KeepPrunedZero()]
        return FitResult(trainer(ctx.model, [*keep, *callbacks]), self.details(callbacks))

    def details(self, callbacks: list[TrainCallback]) -> dict[str, Any]:
        """report.json keys from the callbacks `callbacks(ctx)` made and training ran (none here)."""
        return {}

    def layer_targets(self, model: nn.Module, sparsity: SparsityConfig) -> LayerTargets | None:
        """The per-layer targets this method set itself, read off the trained `model`, for the
        report; None (here): `sparsity.target` and its distribution set them."""
        return None

    def replay_layout(self, model: nn.Module, sparsity: SparsityConfig) -> None:
        """Lay a freshly built `model` out as `fit` leaves it: the order its modules register their
        parameters in, which the exported graph follows. `paiexport export` calls it before it
        loads the run's weights; nothing to do for methods that keep the model's layout."""
        return None


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
