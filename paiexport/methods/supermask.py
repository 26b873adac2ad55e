"""Supermask: sample a Bernoulli(sigmoid(score)) mask per forward, straight-through.

In training each weight is kept with probability sigmoid(score), with the gradient
passed through the sample to the probability. Evaluation and export use the thresholded
expectation: per layer, the weights with the highest sigmoid(score), as many as the
target sparsity allows. Scores start near logit(layer density), so the sampled masks
begin at the target sparsity.

Reference: Zhou et al. 2019, "Deconstructing Lottery Tickets: Zeros, Signs, and the
Supermask", https://arxiv.org/abs/1905.01067
"""

import math
from typing import Literal

import torch

from paiexport.methods.selection import MaskSelector, SelectionConfig, SparseSelection, top_k


class SupermaskConfig(SelectionConfig):
    name: Literal["supermask"] = "supermask"


class SupermaskSelector(MaskSelector):
    @staticmethod
    def initial_scores(weight: torch.Tensor, keep: int, generator: torch.Generator) -> torch.Tensor:
        density = min(max(keep / weight.numel(), 1e-3), 1 - 1e-3)
        noise = torch.rand(weight.shape, generator=generator) * 2 - 1
        return math.log(density / (1 - density)) + noise

    def mask(self) -> torch.Tensor:
        if not self.training:
            return top_k(self.scores, self.keep)
        probs = torch.sigmoid(self.scores)
        return torch.bernoulli(probs.detach()) + probs - probs.detach()

    def final_mask(self) -> torch.Tensor:
        return top_k(self.scores, self.keep).bool()


class Supermask(SparseSelection):
    config_class = SupermaskConfig
    selector_class = SupermaskSelector
