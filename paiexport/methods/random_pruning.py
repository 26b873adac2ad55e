"""Random pruning at initialization: the baseline every criterion must beat.

Reference: Liu et al. 2022, "The Unreasonable Effectiveness of Random Pruning",
https://arxiv.org/abs/2202.02643 (random masks with ERK ratios are strong baselines).
"""

from typing import Literal

import torch

from paiexport.methods.base import SelectionContext
from paiexport.methods.score import ScoreConfig, ScoreMethod


class RandomConfig(ScoreConfig):
    name: Literal["random"] = "random"


class RandomPruning(ScoreMethod):
    config_class = RandomConfig

    def scores(self, ctx: SelectionContext) -> dict[str, torch.Tensor]:
        return {n: torch.rand(w.shape, generator=ctx.generator) for n, w in ctx.prunable().items()}
