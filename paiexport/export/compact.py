"""Compact export: a physically smaller PyTorch model with the same outputs as the masked one.

Pruned weights are zeros in a dense tensor; onnxruntime multiplies them anyway. Speed needs
fewer channels, so compaction traces the model into channel groups
(`paiexport.sparsity.depgraph`: producers, norms, residual additions, concatenation,
depthwise convolutions, flatten into Linear, transformer MLPs) and removes, for every group
the graph can prune, the channels that are

- dead (every producer row is zero): the channel then carries a constant that does not depend
  on the input (e.g. relu(bias) or BN(0)); its contribution to each consumer is folded into
  the consumer's bias, or, when zero padding makes it vary over positions, into a constant
  added after the consumer (`AddConstant`); or
- unused (every consumer reads it with all-zero weights): it contributes nothing.

See `paiexport.sparsity.shrink`. Groups the graph cannot handle stay as they are, so the
result always computes the masked model's function. For `nn.Sequential` models, input
features that no weight of the first layer reads are dropped behind a Gather
(`SelectFeatures`). This works on modules rather than on the ONNX graph because
torch.onnx.export then produces a clean graph for any opset and onnxruntime version.

Reference: Li et al. 2017, "Pruning Filters for Efficient ConvNets",
https://arxiv.org/abs/1608.08710 (removing filters and the next layer's matching kernels).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

from paiexport.inputs import Inputs, as_example, call_model, flat_outputs
from paiexport.sparsity.depgraph import build_graph
from paiexport.sparsity.shrink import AddConstant, shrink_model

__all__ = ["AddConstant", "CompactResult", "SelectFeatures", "compact_model", "max_abs_diff"]

FEATURE_ONLY_TYPES = (nn.Flatten, nn.Identity, nn.Dropout)


class SelectFeatures(nn.Module):
    """Keeps the input features/channels that some weight reads (exported as Gather)."""

    def __init__(self, index: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("index", index.detach().clone().long())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.index_select(x, 1, self.index)


@dataclass(frozen=True)
class CompactResult:
    model: nn.Module
    params_before: int
    params_after: int


def compact_model(model: nn.Module, example: tuple[int, ...] | Inputs) -> CompactResult:
    """A smaller copy of `model` (masks already baked in) computing the same function; `example`
    is a batch like the data's inputs to trace it with (`DataSplits.example()`; one sample's
    shape stands for two float rows of zeros)."""
    model.eval()
    example = as_example(example, 2)
    graph = build_graph(model, example)
    result = shrink_model(model, graph, example)
    work = result.model
    if isinstance(work, nn.Sequential):
        with torch.no_grad():
            _drop_unread_inputs(work)
    return CompactResult(work, result.params_before, _count(work))


def max_abs_diff(a: nn.Module, b: nn.Module, x: Inputs) -> float:
    """The largest difference of any output of `a` and `b` on `x`."""
    with torch.no_grad():
        pairs = zip(flat_outputs(call_model(a.eval(), x)), flat_outputs(call_model(b.eval(), x)), strict=True)
        return max(float((p - q).abs().max()) for p, q in pairs)


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _drop_unread_inputs(seq: nn.Sequential) -> None:
    """Gather only the input features/channels that the first weight layer reads."""
    chain = list(seq._modules.items())
    first = next(
        (k for k, (_, m) in enumerate(chain) if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))), None
    )
    if first is None or not all(isinstance(m, FEATURE_ONLY_TYPES) for _, m in chain[:first]):
        return
    name, layer = chain[first]
    if getattr(layer, "groups", 1) != 1:
        return
    read = layer.weight.reshape(layer.weight.shape[0], layer.weight.shape[1], -1).any(dim=2).any(dim=0)
    if read.all():
        return
    if not read.any():
        read[0] = True
    index = torch.nonzero(read).flatten()
    layer.weight = nn.Parameter(layer.weight[:, index].clone(), requires_grad=layer.weight.requires_grad)
    if isinstance(layer, nn.Linear):
        layer.in_features = len(index)
    else:
        layer.in_channels = len(index)
    chain.insert(first, (f"{name}_inputs", SelectFeatures(index)))
    seq._modules = OrderedDict(chain)
