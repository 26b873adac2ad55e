"""`train.compact: true`: train the physically smaller network instead of the masked one.

With static channel masks the pruned channels never come back, so there is no reason to carry
them through training. Right after selection the masks are baked in and the model is shrunk
exactly (`paiexport.sparsity.shrink`: pruned channels removed, the constants they still carry
folded into their consumers), and training runs on the small tensors: the optimizer only
holds kept channels, and every forward/backward pass is as cheap as the compact file.

It is not bit-for-bit the masked training: in a masked network the BatchNorm shift of a pruned
channel still trains (it reaches the consumer as a constant), while here that constant is
folded into the consumer's bias at selection time (or into a fixed `AddConstant` where zero
padding makes it vary over positions). The function class is nearly the same, so accuracy
agrees within seed noise (see `benchmarks/train_compact.py`).

The run then exports the trained compact network: model.onnx is that network (there is no
masked full-size version of it), and `paiexport export` rebuilds the same architecture from
the recipe and masks.pt (`rebuild_compact`) before loading model.pt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from paiexport.data.splits import SplitLike
from paiexport.errors import UserError
from paiexport.inputs import Inputs, to_device
from paiexport.sparsity.depgraph import build_graph
from paiexport.sparsity.masks import (
    attach_masks,
    get_masks,
    masks_sparsity,
    prunable_weights,
    strip_masks,
    tied_weights,
)
from paiexport.sparsity.shrink import shrink_model
from paiexport.sparsity.types import Masks


@dataclass
class CompactTraining:
    """The small model that replaced the masked one, and what it replaced."""

    model: nn.Module
    masks: Masks  # the selection, on the full-size weights
    params_full: int
    params_trained: int

    def report(self) -> dict[str, Any]:
        """report.json `train_compact`."""
        return {
            "params_full": self.params_full,
            "params_trained": self.params_trained,
            "selection_sparsity": masks_sparsity(self.masks),
        }


TRAIN_COMPACT_NOTE = (
    "train.compact: the physically smaller network was trained; model.onnx is that network "
    "(sparsity.reached is the selection's, per_layer describes the trained tensors)."
)


def shrink_for_training(model: nn.Module, example: Inputs) -> CompactTraining:
    """Bake `model`'s attached masks in and return the exactly equivalent small model (`example`:
    a sample batch, one tensor or a tuple/dict of the model's inputs)."""
    tied = list(tied_weights(model).values())
    if tied:
        raise UserError(
            f"train.compact: {' and '.join(tied[0][:2])} are one tied tensor, which a smaller network "
            "would untie; set train.compact: false"
        )
    masks = {n: m.detach().cpu().clone() for n, m in get_masks(model).items()}
    device = next(model.parameters()).device
    full = strip_masks(model).eval()
    # Fold what a pruned channel carries *in training*: BatchNorm of a constant channel gives its
    # shift (batch variance 0). With fresh running statistics eval mode gives the same value;
    # scoring passes may have moved them (training re-estimates them anyway).
    for m in full.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
    example = to_device(example, device)
    result = shrink_model(full, build_graph(full, example), example)
    return CompactTraining(result.model, masks, result.params_before, result.params_after)


def compact_example(split: SplitLike) -> Inputs:
    """The sample batch the shrink is traced on: the first two training samples."""
    return split.head(2)


def rebuild_compact(model: nn.Module, masks: Masks, example: Inputs) -> CompactTraining:
    """What `shrink_for_training` made from a freshly built `model` and its masks."""
    names = prunable_weights(model)
    attach_masks(model, {n: m for n, m in masks.items() if n in names})
    return shrink_for_training(model, example)
