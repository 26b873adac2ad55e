"""Edge-popup: keep the weights with the top-(1 − target) |score| per layer, straight-through.

Reference: Ramanujan et al. 2020, "What's Hidden in a Randomly Weighted Neural Network?",
https://arxiv.org/abs/1911.13299
"""

import math
from typing import Literal

import torch

from paiexport.methods.selection import MaskSelector, SelectionConfig, SparseSelection, StraightThrough, top_k


class EdgePopupConfig(SelectionConfig):
    name: Literal["edge_popup"] = "edge_popup"


class EdgePopupSelector(MaskSelector):
    @staticmethod
    def initial_scores(weight: torch.Tensor, keep: int, generator: torch.Generator) -> torch.Tensor:
        """Kaiming uniform with a = √5 (the paper's code): U(±1/√fan_in)."""
        bound = 1.0 / math.sqrt(weight[0].numel())
        return (torch.rand(weight.shape, generator=generator) * 2 - 1) * bound

    def mask(self) -> torch.Tensor:
        magnitude = self.scores.abs()  # the paper ranks |score|; the gradient flows through abs
        return StraightThrough.apply(magnitude, top_k(magnitude, self.keep))

    def final_mask(self) -> torch.Tensor:
        return top_k(self.scores.abs(), self.keep).bool()


class EdgePopup(SparseSelection):
    config_class = EdgePopupConfig
    selector_class = EdgePopupSelector
