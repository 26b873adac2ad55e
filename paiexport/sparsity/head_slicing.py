"""Remove the pruned heads of attention blocks whose q, k, v and output projections are
`nn.Linear`s (Hugging Face layers, `hf_rules.py`), keeping the function exact.

A head group (role "head": the q/k/v rows of one key/value head and the query heads that read
it; role "in": their output-projection columns) is dead when every output-projection column of
it is zero: the head then adds exactly nothing, whatever its q, k and v compute. Its rows and
columns are sliced away, once per module (GPT-2's q, k and v are one Linear, three members at
three offsets: their kept rows are taken together), and the attention module's head counts
(`num_attention_heads`, `num_heads`, `num_key_value_heads`, `all_head_size`, and GPT-2's
`split_size`, the width its fused output is split into q, k and v by, where it has them)
follow; the forward reshapes into heads of `head_dim` with -1 heads, so it runs unchanged.
Every group keeps at least one head.
"""

from __future__ import annotations

import torch
from torch import nn

from paiexport.sparsity.depgraph import ChannelGroup, DependencyGraph, Member
from paiexport.sparsity.groups import channel_index, channel_slices


def head_slice_groups(graph: DependencyGraph) -> list[int]:
    """Prunable groups of heads of Linear projections (role "head")."""
    return [i for i in graph.prunable if any(m.role == "head" for m in graph.groups[i].members)]


def dead_heads(group: ChannelGroup, modules: dict[str, nn.Module]) -> torch.Tensor:
    """Heads whose output-projection columns are all zero; one head is always kept."""
    dead = torch.ones(group.size, dtype=torch.bool)
    for m in (m for m in group.members if m.role == "in"):
        weight = getattr(modules[m.module], m.param).detach().cpu()
        dead &= ~channel_slices(m, weight, group.size).any(dim=1)
    if dead.all():
        dead[0] = False
    return dead


def _keep(module: nn.Linear, dim: int, index: torch.Tensor) -> None:
    index = index.to(module.weight.device)
    grad = module.weight.requires_grad
    module.weight = nn.Parameter(module.weight.index_select(dim, index).clone(), requires_grad=grad)
    if dim == 0:
        if module.bias is not None:
            module.bias = nn.Parameter(module.bias[index].clone(), requires_grad=module.bias.requires_grad)
        module.out_features = len(index)
    else:
        module.in_features = len(index)


def _kept_indices(group: ChannelGroup, kept: torch.Tensor) -> dict[tuple[str, int], torch.Tensor]:
    """(module, dim) -> the sorted indices to keep along it: one slice per module, even when q, k
    and v are one Linear at three offsets (three members)."""
    found: dict[tuple[str, int], list[torch.Tensor]] = {}
    for member in group.members:
        found.setdefault((member.module, member.dim), []).append(channel_index(member, kept))
    return {key: torch.cat(parts).sort().values for key, parts in found.items()}


def _update_counts(attn: nn.Module, q: Member, k: Member, kept: int) -> None:
    """The attention module's head counts after `kept` key/value heads remain."""
    n_rep = q.per // k.per
    counts = {
        "num_attention_heads": kept * n_rep,
        "num_heads": kept * n_rep,
        "num_key_value_heads": kept,
        "all_head_size": kept * q.per,
        "split_size": kept * q.per,
    }
    for attr, value in counts.items():
        if isinstance(getattr(attn, attr, None), int):
            setattr(attn, attr, value)


def slice_heads(root: nn.Module, graph: DependencyGraph) -> dict[int, int]:
    """Remove the dead heads of every such head group in place; group index ->
    heads removed (key/value heads, with their query heads)."""
    modules = dict(root.named_modules())
    removed: dict[int, int] = {}
    for index in head_slice_groups(graph):
        group = graph.groups[index]
        dead = dead_heads(group, modules)
        if not dead.any():
            continue
        with torch.no_grad():
            for (module, dim), kept in _kept_indices(group, ~dead).items():
                _keep(modules[module], dim, kept)
        q, k = _qk(group)
        owner = q.module.rpartition(".")[0]
        _update_counts(modules[owner], q, k, int((~dead).sum()))
        removed[index] = int(dead.sum())
    return removed


def _qk(group: ChannelGroup) -> tuple[Member, Member]:
    """The q and k members: the group's first two "head" members (`hf_rules.add_heads`' order)."""
    heads = [m for m in group.members if m.role == "head"]
    return heads[0], heads[1]
