"""Magnitude pruning at initialization: keep the weights with the largest |θ|.

Reference: Han et al. 2015, "Learning both Weights and Connections",
https://arxiv.org/abs/1506.02626 (applied here to the random initialization,
as in the PaI survey's baselines, https://arxiv.org/abs/2103.06460).
"""

from typing import Literal

import torch

from paiexport.methods.base import SelectionContext
from paiexport.methods.score import ScoreConfig, ScoreMethod


class MagnitudeConfig(ScoreConfig):
    name: Literal["magnitude"] = "magnitude"


class Magnitude(ScoreMethod):
    config_class = MagnitudeConfig

    def scores(self, ctx: SelectionContext) -> dict[str, torch.Tensor]:
        return {n: w.detach().abs().clone() for n, w in ctx.prunable().items()}
