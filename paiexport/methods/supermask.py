"""Supermask: sample a Bernoulli(sigmoid(score)) mask per forward, straight-through.

In training each weight is kept with probability sigmoid(score), with the gradient
passed through the sample to the probability. Evaluation and export use the thresholded
expectation: per layer, the weights with the highest sigmoid(score / temperature), as
many as the target sparsity allows. Scores start near logit(layer density), so the
sampled masks begin at the target sparsity.

Reference: Zhou et al. 2019, "Deconstructing Lottery Tickets: Zeros, Signs, and the
Supermask", https://arxiv.org/abs/1905.01067
"""

import math
from typing import Literal

import torch
from torch import nn

from paiexport.inputs import call_model, to_device
from paiexport.methods.base import SelectionContext
from paiexport.methods.selection import MaskSelector, SelectionConfig, SparseSelection, top_k


class SupermaskConfig(SelectionConfig):
    name: Literal["supermask"] = "supermask"


def temperature(weight: torch.Tensor) -> float:
    """Scores are logits times 1/√(10 · fan_in).

    Logits must move by O(1) to make a mask nearly deterministic, but the gradients reaching
    them are O(weight) small, so with the recipe's usual learning rate raw logits barely move
    (34.5% on MNIST-1D at 50%); dividing by this temperature scales their effective learning
    rate by 10 · fan_in. Measured on edgepopup50 (seeds 0-2, mean): √fan_in 34.5%, √(3 · fan_in)
    71% (seed 0), √(10 · fan_in) 79.8%, √(30 · fan_in) 79.7%, √(100 · fan_in) 66% (seed 0).
    """
    return 1.0 / math.sqrt(10 * weight[0].numel())


class SupermaskSelector(MaskSelector):
    @staticmethod
    def initial_scores(weight: torch.Tensor, keep: int, generator: torch.Generator) -> torch.Tensor:
        density = min(max(keep / weight.numel(), 1e-3), 1 - 1e-3)
        noise = torch.rand(weight.shape, generator=generator) * 2 - 1
        return temperature(weight) * (math.log(density / (1 - density)) + noise)

    def mask(self) -> torch.Tensor:
        if not self.training:
            return top_k(self.scores, self.keep)
        probs = torch.sigmoid(self.scores / temperature(self.scores))
        return torch.bernoulli(probs.detach()) + probs - probs.detach()

    def final_mask(self) -> torch.Tensor:
        return top_k(self.scores, self.keep).bool()


class Supermask(SparseSelection):
    config_class = SupermaskConfig
    selector_class = SupermaskSelector

    @torch.no_grad()
    def finalize(self, ctx: SelectionContext) -> None:
        """Re-estimate BatchNorm statistics under the exported (thresholded) mask.

        Training saw sampled masks, whose activations have other means and variances than the
        thresholded one; the running statistics are recomputed on the training set with the
        final mask (no parameter changes). The validation accuracy logged during training
        still uses the sampled-mask statistics, so it understates the exported model's.
        """
        norms = [m for m in ctx.model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if not norms:
            return
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over all batches
        ctx.model.train()
        for m in ctx.model.modules():
            if isinstance(m, SupermaskSelector):
                m.eval()  # thresholded mask
        device = next(ctx.model.parameters()).device
        for x, _ in ctx.data.train.batches(ctx.batch_size):
            call_model(ctx.model, to_device(x, device))
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        ctx.model.eval()
