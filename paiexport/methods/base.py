"""What every pruning method is: typed options plus how it picks (and updates) masks."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from paiexport.allocation import SparsityConfig, allocate_masks
from paiexport.config import StrictModel
from paiexport.data import DataSplits
from paiexport.masks import Masks, prunable_weights
from paiexport.train import TrainCallback


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
    generator: torch.Generator = field(default_factory=lambda: torch.Generator().manual_seed(0))

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


class Method(ABC):
    """A pruning method. `select` runs once at initialization; `callbacks` act during training."""

    config_class: ClassVar[type[MethodConfig]]
    trains_weights: ClassVar[bool] = True

    def __init__(self, config: MethodConfig) -> None:
        self.config = config

    @abstractmethod
    def select(self, ctx: SelectionContext) -> Masks | None:
        """Masks to attach before training, or None to train dense."""

    def callbacks(self, ctx: SelectionContext) -> list[TrainCallback]:
        return []


class ScoreMethod(Method):
    """A static criterion: score every prunable weight, keep the highest (see `allocation`)."""

    @abstractmethod
    def scores(self, ctx: SelectionContext) -> dict[str, torch.Tensor]:
        """Importance per weight (higher = keep), keyed like `ctx.prunable()`."""

    def select(self, ctx: SelectionContext) -> Masks:
        return allocate_masks(self.scores(ctx), ctx.sparsity.target, ctx.sparsity.distribution)


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
