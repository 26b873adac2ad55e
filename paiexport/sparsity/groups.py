"""Group scores from per-weight scores, and per-weight masks from a per-group keep-set.

Scoring: channel c of a group collects, from every member weight that has scores, the slice
that belongs to c: a producer's output row c (all its inputs x kernel), a consumer's input
column block c (all its outputs x kernel x `per` flattened positions), a depthwise row.
`channel_reduce` then reduces all those values together: `sum` adds them, `mean` divides by
their count, `l2` is the norm of all of them. Members without scores (BatchNorm, attention
projections, weights excluded from pruning) do not contribute. A channel with a -inf
producer score (pruned in an earlier round) stays at -inf.

Masks: a pruned channel zeroes the producers' output rows (and depthwise rows). Consumers'
input columns stay: those inputs become dead (a constant act(norm(bias))), and
`shrink.py` folds that constant into the consumer exactly when it removes the channel.
Attention heads are the exception (`zeroed_members`): nn.MultiheadAttention's q/k/v rows are not
maskable weights, so a pruned head zeroes its out_proj columns (see `attention.py`); a head of
separate q/k/v Linears (role "head", `hf_rules.py`) zeroes its q/k/v rows and its output
projection's columns.
"""

from __future__ import annotations

import torch

from paiexport.sparsity.depgraph import ChannelGroup, DependencyGraph, Member
from paiexport.sparsity.types import ChannelReduce

_ZEROED_ROLES = ("out", "dw")


def zeroed_members(group: ChannelGroup) -> list[Member]:
    """The members whose slices a pruned channel zeroes: producer and depthwise rows; for
    nn.MultiheadAttention heads the out_proj columns (the head's only maskable weight); for
    heads of separate q/k/v Linears their rows and the output projection's columns."""
    roles = {m.role for m in group.members}
    if "qkv" in roles:
        return [m for m in group.members if m.role == "in"]
    if "head" in roles:
        return [m for m in group.members if m.role in ("head", "in")]
    return [m for m in group.members if m.role in _ZEROED_ROLES]


def channel_slices(member: Member, tensor: torch.Tensor, size: int) -> torch.Tensor:
    """`tensor` (shaped like the member's parameter) as (size, values per channel)."""
    moved = tensor.movedim(member.dim, 0)
    block = moved[member.offset : member.offset + size * member.per]
    return block.reshape(size, -1)


def channel_index(member: Member, channels: torch.Tensor) -> torch.Tensor:
    """Indices along the member's dim of the channels where `channels` (bool) is True."""
    picked = torch.nonzero(channels).flatten()
    return (member.offset + picked.view(-1, 1) * member.per + torch.arange(member.per)).flatten()


def group_score(group: ChannelGroup, scores: dict[str, torch.Tensor], how: ChannelReduce) -> torch.Tensor:
    """One score per channel of `group` from the scores of its member weights."""
    total = torch.zeros(group.size, dtype=torch.float64)
    count = 0
    dead = torch.zeros(group.size, dtype=torch.bool)
    zeroed = zeroed_members(group)
    for member in group.members:
        name = f"{member.module}.{member.param}"
        if name not in scores:
            continue
        values = channel_slices(member, scores[name].detach().double().cpu(), group.size)
        if member in zeroed:
            dead |= torch.isneginf(values).any(dim=1)
        values = values.masked_fill(torch.isneginf(values), 0.0)
        total += (values * values).sum(dim=1) if how is ChannelReduce.l2 else values.sum(dim=1)
        count += values.shape[1]
    if how is ChannelReduce.mean:
        total = total / max(count, 1)
    elif how is ChannelReduce.l2:
        total = total.sqrt()
    return total.masked_fill(dead, float("-inf"))


def group_scores(
    graph: DependencyGraph, scores: dict[str, torch.Tensor], how: ChannelReduce
) -> dict[int, torch.Tensor]:
    """Scores of every prunable group, keyed by the group's index in `graph.groups`."""
    return {i: group_score(graph.groups[i], scores, how) for i in graph.prunable}


def group_masks(
    graph: DependencyGraph, keep: dict[int, torch.Tensor], weights: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Masks for `weights` (name -> weight): False on the rows of channels not kept."""
    masks = {n: torch.ones(w.shape, dtype=torch.bool, device=w.device) for n, w in weights.items()}
    for index, kept in keep.items():
        group = graph.groups[index]
        if not group.prunable or kept.shape != (group.size,):
            raise ValueError(f"group {index}: not prunable or keep-set of the wrong size")
        for member in zeroed_members(group):
            name = f"{member.module}.{member.param}"
            if name not in masks:
                continue
            masks[name].index_fill_(
                member.dim, channel_index(member, ~kept.cpu()).to(masks[name].device), False
            )
    return masks
