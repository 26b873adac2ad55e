"""The training loop's extension points: what callbacks see and the hooks they implement.

Masks, dynamic updates and schedules plug in here; the loop itself knows nothing of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from paiexport.sparsity.masks import enforce_after_step
from paiexport.training.metrics_log import Record


@dataclass
class TrainState:
    """What callbacks see. `log` appends a record to metrics.jsonl."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    steps_per_epoch: int
    total_steps: int
    log: Callable[[Record], None]  # an EpochRecord, or a method's own record (a dict)
    step: int = 0
    epoch: int = 0
    batch: tuple[torch.Tensor, torch.Tensor] | None = None


class TrainCallback:
    """Hooks into the loop; every method is optional."""

    def on_train_begin(self, state: TrainState) -> None: ...
    def on_step_begin(self, state: TrainState) -> None: ...
    def on_after_backward(self, state: TrainState) -> None: ...
    def on_step_end(self, state: TrainState) -> None: ...
    def on_epoch_end(self, state: TrainState) -> None: ...
    def on_train_end(self, state: TrainState) -> None: ...

    # Resumable training (see training/checkpoint.py): what the callback carries from step
    # to step, saved with every checkpoint and restored (after `on_train_begin`) on resume.
    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class KeepPrunedZero(TrainCallback):
    """Training callback that binds `enforce_after_step` to the loop's optimizer."""

    def on_train_begin(self, state: TrainState) -> None:
        enforce_after_step(state.optimizer, state.model)
