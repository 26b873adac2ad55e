"""Physically remove the dead channels of every prunable group, keeping the function exact.

Input: a model whose masks are baked in (a pruned channel has all-zero producer rows) and its
`DependencyGraph`. A channel of a group is removed when every producer row of it is zero.
Such a channel no longer depends on the input: it carries act(norm(bias)), possibly varied
over positions by zero padding. Before slicing, one forward pass records what each consumer
reads; the dead columns' contribution (consumer weight x recorded constant) is added to the
consumer's bias when it is the same at every position, else added after the consumer
(`AddConstant`, which fixes the spatial size as today's compact export does). Then producers
lose rows (and bias), norms their per-channel tensors, depthwise convs rows and groups,
consumers columns. Every group keeps at least one channel. Attention heads are removed by
`shrink_attention.py` (an nn.MultiheadAttention is replaced by one holding only the kept heads)
and `head_slicing.py` (separate q/k/v/o Linears, e.g. Hugging Face layers, are sliced).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from paiexport.inputs import Inputs, call_model
from paiexport.sparsity.depgraph import ChannelGroup, DependencyGraph
from paiexport.sparsity.groups import channel_index, channel_slices
from paiexport.sparsity.head_slicing import head_slice_groups, slice_heads
from paiexport.sparsity.shrink_attention import head_groups, shrink_heads

_KIND = {"out": "rows", "dw": "rows", "norm": "norm", "in": "cols"}
_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


class AddConstant(nn.Module):
    """Adds a fixed tensor: the folded output of removed constant channels (varies with padding)."""

    def __init__(self, value: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("value", value.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.value


@dataclass(frozen=True)
class ShrinkResult:
    model: nn.Module
    params_before: int
    params_after: int
    removed: dict[int, int]  # group index -> channels removed


def shrink_model(model: nn.Module, graph: DependencyGraph, example: Inputs) -> ShrinkResult:
    """A smaller copy of `model` with the same outputs; `example` is a representative input."""
    work = copy.deepcopy(model).eval()
    modules = dict(work.named_modules())
    with torch.no_grad():
        dead = dead_channels(graph, modules)
        drops = _axis_drops(graph, dead, modules)
        consumers = sorted(name for name, kind in drops if kind == "cols")
        inputs = _record_inputs(work, {c: modules[c] for c in consumers}, example)
        after = {c: _fold(modules[c], inputs[c], drops[(c, "cols")]) for c in consumers}
        for (name, kind), drop in drops.items():
            _slice(modules[name], kind, torch.nonzero(~drop).flatten())
        for name, value in after.items():
            if value is not None:
                _add_after(work, modules, name, value, drops.get((name, "rows")))
        heads = shrink_heads(work, graph) | slice_heads(work, graph)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    removed = {i: int(d.sum()) for i, d in dead.items()} | heads
    return ShrinkResult(work, count(model), count(work), removed)


def dead_channels(graph: DependencyGraph, modules: dict[str, nn.Module]) -> dict[int, torch.Tensor]:
    """Per prunable group: channels whose producer rows are all zero, or that every consumer
    reads with all-zero columns (then they contribute nothing); one is always kept."""
    found: dict[int, torch.Tensor] = {}
    heads = set(head_groups(graph)) | set(head_slice_groups(graph))  # removed by their own modules
    for i in (i for i in graph.prunable if i not in heads):
        group = graph.groups[i]
        dead = _all_zero(group, modules, "out")
        # Only when every reader is a plain consumer (no attention projection or the like).
        roles = {m.role for m in group.members}
        if "in" in roles and roles <= {"out", "in", "norm", "dw"}:
            dead |= _all_zero(group, modules, "in")
        if dead.all():
            dead[0] = False  # zero-sized tensors are not worth the trouble
        if dead.any():
            found[i] = dead
    return found


def _all_zero(group: ChannelGroup, modules: dict[str, nn.Module], role: str) -> torch.Tensor:
    """Channels whose slices are zero in every member of `role`."""
    zero = torch.ones(group.size, dtype=torch.bool)
    for m in (m for m in group.members if m.role == role):
        weight = getattr(modules[m.module], m.param).detach().cpu()
        zero &= ~channel_slices(m, weight, group.size).any(dim=1)
    return zero


def _axis_drops(
    graph: DependencyGraph, dead: dict[int, torch.Tensor], modules: dict[str, nn.Module]
) -> dict[tuple[str, str], torch.Tensor]:
    """(module, rows|norm|cols) -> bool vector of the indices to remove along that axis."""
    drops: dict[tuple[str, str], torch.Tensor] = {}
    for i, channels in dead.items():
        for member in graph.groups[i].members:
            module = modules[member.module]
            key = (member.module, _KIND[member.role])
            if key not in drops:
                length = module.num_features if member.role == "norm" else module.weight.shape[member.dim]
                drops[key] = torch.zeros(length, dtype=torch.bool)
            drops[key][channel_index(member, channels)] = True
    return drops


def _record_inputs(
    model: nn.Module, consumers: dict[str, nn.Module], example: Inputs
) -> dict[str, torch.Tensor]:
    """What each consumer reads, from one forward pass of the masked model."""
    seen: dict[str, torch.Tensor] = {}

    def hook(name: str):
        return lambda _m, args: seen.setdefault(name, args[0].detach().clone())

    handles = [m.register_forward_pre_hook(hook(n)) for n, m in consumers.items()]
    try:
        # Grad enabled: fused inference paths (TransformerEncoderLayer) would skip the hooks.
        with torch.enable_grad():
            call_model(model, example)
    finally:
        for h in handles:
            h.remove()
    missing = sorted(set(consumers) - set(seen))
    if missing:
        raise RuntimeError(f"shrink: no input recorded for {', '.join(missing)}")
    return seen


def _fold(module: nn.Module, x: torch.Tensor, drop: torch.Tensor) -> torch.Tensor | None:
    """Fold the dead columns' (constant) contribution into the bias; else return it."""
    linear = isinstance(module, nn.Linear)
    shape = [1] * x.dim()
    shape[-1 if linear else 1] = -1
    dead_x = x * drop.to(x.dtype).view(shape)
    if linear:
        delta = nn.functional.linear(dead_x, module.weight)
        flat = delta.reshape(-1, delta.shape[-1]).T
    else:
        delta = module._conv_forward(dead_x, module.weight, None)
        flat = delta.movedim(1, 0).reshape(delta.shape[1], -1)
    if not bool(torch.all(flat == flat[:, :1])):
        return delta[0]
    if module.bias is None:
        module.bias = nn.Parameter(torch.zeros(flat.shape[0], dtype=module.weight.dtype))
    module.bias.add_(flat[:, 0])
    return None


def _param(old: nn.Parameter, new: torch.Tensor) -> nn.Parameter:
    return nn.Parameter(new.clone(), requires_grad=old.requires_grad)


def _slice(m: nn.Module, kind: str, keep: torch.Tensor) -> None:
    if kind == "cols":
        m.weight = _param(m.weight, m.weight[:, keep])
        if isinstance(m, nn.Linear):
            m.in_features = len(keep)
        else:
            m.in_channels = len(keep)
        return
    for name in ("weight", "bias", "running_mean", "running_var"):
        value = getattr(m, name, None)
        if value is None:
            continue
        if isinstance(value, nn.Parameter):
            setattr(m, name, _param(value, value[keep]))
        else:
            setattr(m, name, value[keep].clone())
    if kind == "norm":
        m.num_features = len(keep)
    elif isinstance(m, nn.Linear):
        m.out_features = len(keep)
    elif isinstance(m, _CONVS):
        if m.groups > 1:  # depthwise: input channels and groups follow the output channels
            m.in_channels = m.groups = len(keep)
        m.out_channels = len(keep)


def _add_after(
    root: nn.Module, modules: dict[str, nn.Module], name: str, value: torch.Tensor, rows: torch.Tensor | None
) -> None:
    """Replace module `name` by Sequential(module, AddConstant(value restricted to kept rows))."""
    if rows is not None:
        keep = torch.nonzero(~rows).flatten()
        value = value[..., keep] if isinstance(modules[name], nn.Linear) else value[keep]
    parent_name, _, attr = name.rpartition(".")
    parent = modules[parent_name] if parent_name else root
    setattr(parent, attr, nn.Sequential(modules[name], AddConstant(value)))
