"""Compact export: a physically smaller PyTorch model with the same outputs as the masked one.

Pruned weights are zeros in a dense tensor; onnxruntime multiplies them anyway. Speed needs
fewer channels, so for every producer/consumer pair of weight layers (Linear, Conv1d, Conv2d,
with BatchNorm, ReLU, pooling and at most one Flatten between them) a channel is removed when

- its weight row is all zero ("dead"): the channel then carries a constant that does not
  depend on the input (e.g. relu(bias) or BN(0)); its contribution to the consumer is
  computed once and folded into the consumer's bias, or, when zero padding makes it vary over
  positions, into a constant added after the consumer (`AddConstant`); or
- the consumer reads it with all-zero weights ("unused"): it contributes nothing.

The consumer loses the matching input columns. Input features that no weight of the first
layer reads are dropped behind a Gather (`SelectFeatures`). Residual blocks are compacted
inside (the channels between their two convolutions); channels joined by the addition stay.
Every layer keeps at least one channel. This works on modules rather than on the ONNX graph
because torch.onnx.export then produces a clean graph for any opset and onnxruntime version.

Reference: Li et al. 2017, "Pruning Filters for Efficient ConvNets",
https://arxiv.org/abs/1608.08710 (removing filters and the next layer's matching kernels).
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

from paiexport.errors import UserError
from paiexport.models import BasicBlock

WEIGHT_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d)
PER_CHANNEL_TYPES = (
    nn.BatchNorm1d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d,
    nn.Dropout, nn.Identity,
)  # fmt: skip
FEATURE_ONLY_TYPES = (nn.Flatten, nn.Identity, nn.Dropout)


class AddConstant(nn.Module):
    """Adds a fixed tensor: the folded output of removed constant channels (varies with padding)."""

    def __init__(self, value: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("value", value.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.value


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


def compact_model(model: nn.Module, input_shape: tuple[int, ...]) -> CompactResult:
    """A smaller copy of `model` (masks already baked in) computing the same function."""
    original = model.eval()
    work = copy.deepcopy(original).eval()
    shapes = _input_shapes(work, input_shape)
    with torch.no_grad():
        _compact(work, shapes)
        if isinstance(work, nn.Sequential):
            _drop_unread_inputs(work)
    return CompactResult(work, _count(original), _count(work))


def max_abs_diff(a: nn.Module, b: nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad():
        return float((a.eval()(x) - b.eval()(x)).abs().max())


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _input_shapes(model: nn.Module, input_shape: tuple[int, ...]) -> dict[int, tuple[int, ...]]:
    """Per-sample input shape of every submodule, keyed by id (one forward pass)."""
    shapes: dict[int, tuple[int, ...]] = {}

    def record(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        shapes.setdefault(id(module), tuple(args[0].shape[1:]))

    hooks = [m.register_forward_pre_hook(record) for m in model.modules()]
    try:
        with torch.no_grad():
            model(torch.zeros(1, *input_shape))
    finally:
        for h in hooks:
            h.remove()
    return shapes


def _compact(module: nn.Module, shapes: dict[int, tuple[int, ...]]) -> None:
    if isinstance(module, nn.Sequential):
        _compact_sequential(module, shapes)
    elif isinstance(module, BasicBlock):
        _compact_block(module, shapes)
    else:
        for child in module.children():
            _compact(child, shapes)


def _compact_sequential(seq: nn.Sequential, shapes: dict[int, tuple[int, ...]]) -> None:
    for child in seq.children():
        if not isinstance(child, WEIGHT_TYPES + PER_CHANNEL_TYPES + (nn.Flatten, SelectFeatures)):
            _compact(child, shapes)
    names = list(seq._modules)
    chain = [seq._modules[n] for n in names]
    in_shapes = [shapes.get(id(m)) for m in chain]
    new_chain, new_names = _compact_chain(chain, names, in_shapes)
    seq._modules = OrderedDict(zip(new_names, new_chain, strict=True))


def _compact_block(block: BasicBlock, shapes: dict[int, tuple[int, ...]]) -> None:
    """The channels between conv1 and conv2; the block's output channels feed the addition."""
    chain = [block.conv1, block.bn1, nn.ReLU(), block.conv2]
    in_shapes = [shapes[id(block.conv1)], None, None, shapes[id(block.conv2)]]
    new_chain, _ = _compact_chain(chain, ["conv1", "bn1", "relu", "conv2"], in_shapes)
    block.conv1, block.bn1 = new_chain[0], new_chain[1]
    rest = new_chain[3:]
    block.conv2 = rest[0] if len(rest) == 1 else nn.Sequential(*rest)


def _compact_chain(
    chain: list[nn.Module], names: list[str], in_shapes: list[tuple[int, ...] | None]
) -> tuple[list[nn.Module], list[str]]:
    """Compact every producer/consumer pair of weight layers in a flat chain of modules."""
    chain, names, in_shapes = list(chain), list(names), list(in_shapes)
    i = _next_weight(chain, 0)
    while i is not None:
        j = _next_weight(chain, i + 1)
        if j is None:
            break
        if _compactable(chain, i, j) and in_shapes[i] is not None and in_shapes[j] is not None:
            _compact_pair(chain, names, in_shapes, i, j)  # may insert after j, never before
        i = j
    return chain, names


def _next_weight(chain: list[nn.Module], start: int) -> int | None:
    return next((k for k in range(start, len(chain)) if isinstance(chain[k], WEIGHT_TYPES)), None)


def _compactable(chain: list[nn.Module], i: int, j: int) -> bool:
    between = chain[i + 1 : j]
    flattens = [m for m in between if isinstance(m, nn.Flatten)]
    ok_between = all(isinstance(m, (*PER_CHANNEL_TYPES, nn.Flatten, AddConstant)) for m in between)
    ok_flatten = len(flattens) <= 1 and all(f.start_dim == 1 and f.end_dim == -1 for f in flattens)
    grouped = any(getattr(m, "groups", 1) != 1 for m in (chain[i], chain[j]))
    if flattens and not isinstance(chain[j], nn.Linear):
        return False
    return ok_between and ok_flatten and not grouped


def _channels(m: nn.Module) -> int:
    return m.out_features if isinstance(m, nn.Linear) else m.out_channels


def _consumer_view(q: nn.Module, channels: int) -> torch.Tensor:
    """Consumer weight as (out, channel, positions read per channel)."""
    return q.weight.reshape(q.weight.shape[0], channels, -1)


def _compact_pair(chain: list[nn.Module], names: list[str], in_shapes: list, i: int, j: int) -> int:
    """Remove dead/unused channels between chain[i] and chain[j]; returns modules inserted."""
    p, q = chain[i], chain[j]
    channels = _channels(p)
    dead = ~p.weight.reshape(channels, -1).any(dim=1)
    unused = ~_consumer_view(q, channels).any(dim=2).any(dim=0)
    removed = dead | unused
    if not removed.any():
        return 0
    if removed.all():
        removed[0] = False  # keep one channel: zero-sized tensors are not worth the trouble
    keep = torch.nonzero(~removed).flatten()
    # What the dead channels carry: the chain up to the consumer, run on zeros.
    upstream = nn.Sequential(*chain[i:j]).eval()
    carried = upstream(torch.zeros(1, *in_shapes[i]))
    per_channel = carried.reshape(1, channels, -1)
    folded = (per_channel * (removed & dead).view(1, -1, 1).to(per_channel.dtype)).reshape(carried.shape)
    inserted = 0
    if folded.any():
        inserted = _fold_into_consumer(chain, names, in_shapes, j, folded)
    positions = carried[0].numel() // channels
    chain[i] = _slice_rows(p, keep)
    for k in range(i + 1, j):
        chain[k] = _slice_per_channel(chain[k], keep)
    chain[j] = _slice_columns(q, keep, positions if isinstance(q, nn.Linear) else 1)
    old = in_shapes[j]
    in_shapes[j] = (len(keep) * positions,) if isinstance(q, nn.Linear) else (len(keep), *old[1:])
    return inserted


def _fold_into_consumer(
    chain: list[nn.Module], names: list[str], in_shapes: list, j: int, x: torch.Tensor
) -> int:
    """Add q(x) without bias to q's output: into the bias if position-independent, else after q."""
    q = chain[j]
    if isinstance(q, nn.Linear):
        delta = nn.functional.linear(x, q.weight)[0]
    else:
        delta = q._conv_forward(x, q.weight, None)[0]
    flat = delta.reshape(delta.shape[0], -1)
    uniform = bool(torch.all(flat == flat[:, :1]))
    if uniform:
        if q.bias is None:
            q.bias = nn.Parameter(torch.zeros(flat.shape[0], dtype=q.weight.dtype))
        q.bias.add_(flat[:, 0])
        return 0
    chain.insert(j + 1, AddConstant(delta))
    names.insert(j + 1, f"{names[j]}_folded")
    in_shapes.insert(j + 1, None)
    return 1


def _slice_rows(m: nn.Module, keep: torch.Tensor) -> nn.Module:
    new = copy.deepcopy(m)
    new.weight = nn.Parameter(m.weight[keep].clone())
    if m.bias is not None:
        new.bias = nn.Parameter(m.bias[keep].clone())
    if isinstance(m, nn.Linear):
        new.out_features = len(keep)
    else:
        new.out_channels = len(keep)
    return new


def _slice_columns(m: nn.Module, keep: torch.Tensor, positions: int) -> nn.Module:
    """Keep the consumer's inputs of the kept channels (each channel spans `positions` columns)."""
    cols = (keep.view(-1, 1) * positions + torch.arange(positions).view(1, -1)).flatten()
    new = copy.deepcopy(m)
    new.weight = nn.Parameter(m.weight[:, cols].clone())
    if isinstance(m, nn.Linear):
        new.in_features = len(cols)
    else:
        new.in_channels = len(cols)
    return new


def _slice_per_channel(m: nn.Module, keep: torch.Tensor) -> nn.Module:
    if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
        new = copy.deepcopy(m)
        new.num_features = len(keep)
        for name in ("weight", "bias"):
            if getattr(m, name) is not None:
                setattr(new, name, nn.Parameter(getattr(m, name)[keep].clone()))
        new.running_mean = m.running_mean[keep].clone()
        new.running_var = m.running_var[keep].clone()
        return new
    if isinstance(m, AddConstant):
        return AddConstant(m.value[keep])
    if isinstance(m, (nn.Flatten, *PER_CHANNEL_TYPES)):
        return m
    raise UserError(f"compact export: cannot slice channels of {type(m).__name__}")


def _drop_unread_inputs(seq: nn.Sequential) -> None:
    """Gather only the input features/channels that the first weight layer reads."""
    chain = list(seq._modules.items())
    first = _next_weight([m for _, m in chain], 0)
    if first is None or not all(isinstance(m, FEATURE_ONLY_TYPES) for _, m in chain[:first]):
        return
    name, layer = chain[first]
    if getattr(layer, "groups", 1) != 1:
        return
    inputs = layer.weight.shape[1]
    read = _consumer_view(layer, inputs).any(dim=2).any(dim=0)
    if read.all():
        return
    if not read.any():
        read[0] = True
    index = torch.nonzero(read).flatten()
    chain[first] = (name, _slice_columns(layer, index, 1))
    chain.insert(first, (f"{name}_inputs", SelectFeatures(index)))
    seq._modules = OrderedDict(chain)
