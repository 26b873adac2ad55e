"""SNFS (sparse momentum): regrow by momentum magnitude, redistributing across layers.

Each layer drops its smallest-magnitude active weights as in RigL and SET; the total
is then regrown across layers in proportion to each layer's mean momentum magnitude
over its active weights, and within a layer at the inactive positions with the largest
momentum. The momentum is an exponential average of the *dense* gradient (the paper's
momentum sees every gradient), so SNFS records dense gradients on every step; the
optimizer itself still only sees masked gradients. Total sparsity is unchanged by each
update; per-layer sparsity moves.

Reference: Dettmers & Zettlemoyer 2019, "Sparse Networks from Scratch: Faster Training
without Losing Performance", https://arxiv.org/abs/1907.04840
"""

from typing import Any, Literal

import torch
from pydantic import Field

from paiexport.methods.dynamic import DynamicConfig, DynamicMethod, MaskUpdater
from paiexport.sparsity.allocation import _round_to_total
from paiexport.sparsity.masks import pop_dense_grads, request_dense_grads
from paiexport.sparsity.types import Masks
from paiexport.training.callbacks import TrainState
from paiexport.training.distributed import average_across_ranks


class SNFSConfig(DynamicConfig):
    name: Literal["snfs"] = "snfs"
    momentum: float = Field(default=0.9, ge=0.0, lt=1.0, description="decay of the dense-gradient momentum")


class SNFSUpdater(MaskUpdater):
    def __init__(self, config: SNFSConfig, generator: torch.Generator) -> None:
        super().__init__(config, generator)
        self.momentum: dict[str, torch.Tensor] = {}

    def on_step_begin(self, state: TrainState) -> None:
        request_dense_grads(state.model)

    @torch.no_grad()
    def on_after_backward(self, state: TrainState) -> None:
        for name, grad in average_across_ranks(pop_dense_grads(state.model)).items():
            if name in self.momentum:
                self.momentum[name].mul_(self.config.momentum).add_(grad)
            else:
                self.momentum[name] = grad

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "momentum": {n: m.clone() for n, m in self.momentum.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.momentum = {n: m.clone() for n, m in state["momentum"].items()}

    def grow_scores(self, state: TrainState, masks: Masks) -> dict[str, torch.Tensor]:
        return {n: self.momentum[n].abs() for n in masks}

    def grow_counts(self, state: TrainState, masks: Masks, dropped: dict[str, int]) -> dict[str, int]:
        """The dropped total, shared by mean |momentum| of each layer's active weights."""
        means = {n: float(self.momentum[n].abs()[m].mean()) if m.any() else 0.0 for n, m in masks.items()}
        total, norm = sum(dropped.values()), sum(means.values())
        if norm == 0.0:
            return dropped
        wanted = {n: total * means[n] / norm for n in masks}
        room = {n: int((~m).sum()) for n, m in masks.items()}  # regrowth only into inactive positions
        return _round_to_total(wanted, room, total)


class SNFS(DynamicMethod):
    config_class = SNFSConfig
    updater_class = SNFSUpdater
