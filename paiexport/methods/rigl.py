"""RigL: drop the smallest-magnitude active weights, regrow where the dense gradient is largest.

The dense gradient is recorded only in the backward pass of update steps
(`masks.request_dense_grads`); every other step is an ordinary masked step.

Reference: Evci et al. 2020, "Rigging the Lottery: Making All Tickets Winners",
https://arxiv.org/abs/1911.11134
"""

from typing import Literal

import torch

from paiexport.methods.dynamic import DynamicConfig, DynamicMethod, MaskUpdater
from paiexport.sparsity.masks import pop_dense_grads, request_dense_grads
from paiexport.sparsity.types import Masks
from paiexport.training.callbacks import TrainState
from paiexport.training.distributed import average_across_ranks


class RigLConfig(DynamicConfig):
    name: Literal["rigl"] = "rigl"


class RigLUpdater(MaskUpdater):
    def __init__(self, config: DynamicConfig, generator: torch.Generator) -> None:
        super().__init__(config, generator)
        self.dense_grads: dict[str, torch.Tensor] = {}
        self.requested = False

    def on_step_begin(self, state: TrainState) -> None:
        self.requested = self.will_update(state)
        if self.requested:
            request_dense_grads(state.model)

    def on_after_backward(self, state: TrainState) -> None:
        if self.requested:
            # Under DDP each rank saw its slice of the batch: grow from the global dense gradient.
            self.dense_grads = average_across_ranks(pop_dense_grads(state.model))

    def grow_scores(self, state: TrainState, masks: Masks) -> dict[str, torch.Tensor]:
        grads, self.dense_grads = self.dense_grads, {}
        return {n: grads[n].abs() for n in masks}


class RigL(DynamicMethod):
    config_class = RigLConfig
    updater_class = RigLUpdater
