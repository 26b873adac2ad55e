"""SET: drop the smallest-magnitude active weights, regrow as many at random.

Reference: Mocanu et al. 2018, "Scalable training of artificial neural networks with
adaptive sparse connectivity inspired by network science", https://arxiv.org/abs/1707.04780
"""

from typing import Literal

import torch

from paiexport.methods.dynamic import DynamicConfig, DynamicMethod, MaskUpdater
from paiexport.sparsity.types import Masks
from paiexport.training.callbacks import TrainState


class SETConfig(DynamicConfig):
    name: Literal["set"] = "set"


class SETUpdater(MaskUpdater):
    def grow_scores(self, state: TrainState, masks: Masks) -> dict[str, torch.Tensor]:
        """Uniform noise: the regrown positions are a random sample of the inactive ones."""
        # Drawn on the CPU generator (deterministic everywhere), then moved to the mask's device.
        return {n: torch.rand(m.shape, generator=self.generator).to(m.device) for n, m in masks.items()}


class SET(DynamicMethod):
    config_class = SETConfig
    updater_class = SETUpdater
