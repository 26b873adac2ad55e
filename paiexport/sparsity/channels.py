"""`structure: channel` over the channel groups of the dependency graph (`depgraph.py`).

A group is every weight slice that holds the same channels (a producer's output rows, the
BatchNorm after it, the other producers joined to it by a residual addition, a depthwise
convolution's rows, consumers' input columns). Each group gets one score per channel
(`groups.group_score`: the members' scores reduced by `channel_reduce`) and the recipe's
distribution decides how many channels each group keeps: `uniform` the same fraction of every
group, `erk` by the group's shape (channels x weights per channel), `global` the best
channels across groups until the weight budget is spent.

Counting: `sparsity.target` is the fraction of the prunable weights removed, and a pruned
channel removes its rows in every producer of the group (and depthwise rows); an
nn.MultiheadAttention head removes its out_proj columns (its q/k/v rows are not maskable
weights, `attention.py`), so for those heads the columns are counted; a head of separate q/k/v
Linears (`hf_rules.py`) counts its q/k/v rows and its output columns. Other consumers'
input columns are NOT counted: the masks keep them (they read a dead, constant channel that
`compact` folds into the consumer's bias), and `reached` sparsity is measured on the masks, so
counting them would make the target and the reached sparsity disagree. The compact model
therefore loses more weights than the target says (see report.json `compact`).

`sparsity.group_targets` sets the channels instead, by the kind of group (`group_kind`): every
prunable group of a named kind loses that fraction of its channels (`counts.kept`, at least one
left) and groups of other kinds keep all theirs; `sparsity.target` only paces a schedule then
(`SparsityConfig.at`). A kind the model has no prunable group of is refused.

A group is prunable when the graph says so (the classifier's outputs, model inputs and ops the
rules do not understand stay dense, `structure_notes` names them) and every weight whose rows
it zeroes is a prunable weight (not in `sparsity.exclude`).
"""

from __future__ import annotations

import torch

from paiexport.errors import UserError
from paiexport.sparsity.allocation import erk_densities
from paiexport.sparsity.counts import kept, kept_at_density
from paiexport.sparsity.depgraph import ChannelGroup, DependencyGraph, Member
from paiexport.sparsity.groups import group_masks, group_score, zeroed_members
from paiexport.sparsity.topk import top_k_mask
from paiexport.sparsity.types import GROUP_KINDS, Distribution, Masks, SparsityConfig


def _name(member: Member) -> str:
    return f"{member.module}.{member.param}"


def usable_groups(graph: DependencyGraph, scores: dict[str, torch.Tensor]) -> list[int]:
    """Prunable groups whose zeroed members are all prunable weights."""
    return [i for i in graph.prunable if all(_name(m) in scores for m in zeroed_members(graph.groups[i]))]


def channel_weights(group: ChannelGroup, scores: dict[str, torch.Tensor]) -> int:
    """Weights one channel of `group` masks: its producer (and depthwise) rows, or a head's
    out_proj columns (and q/k/v rows, for separate projections)."""
    total = 0
    for m in zeroed_members(group):
        shape = scores[_name(m)].shape
        total += shape.numel() // shape[m.dim] * m.per
    return total


def channel_counts(
    rows: dict[int, torch.Tensor], row_sizes: dict[int, int], density: float, distribution: Distribution
) -> dict[int, int]:
    """Channels to keep per group so that about `density` of the weights stay (at least 1 each)."""
    channels = {n: len(r) for n, r in rows.items()}
    if distribution is Distribution.uniform:
        return {n: max(1, kept_at_density(c, density)) for n, c in channels.items()}
    if distribution is Distribution.erk:
        dens = erk_densities({str(n): (channels[n], row_sizes[n]) for n in rows}, density)
        return {n: max(1, kept_at_density(channels[n], dens[str(n)])) for n in rows}
    # global: best channels across groups until the weight budget is spent
    budget = density * sum(channels[n] * row_sizes[n] for n in rows)
    flat = sorted(((float(s), n) for n, r in rows.items() for s in r), key=lambda t: -t[0])
    counts = dict.fromkeys(rows, 0)
    kept = 0.0
    for _score, n in flat:
        if kept + row_sizes[n] > budget + row_sizes[n] / 2:
            continue
        counts[n] += 1
        kept += row_sizes[n]
    return {n: max(1, c) for n, c in counts.items()}


def group_kind(group: ChannelGroup) -> str:
    """ "heads" (attention heads), "ffn" (feed-forward neurons a block rule found) or "channels"."""
    if any(m.role in ("head", "qkv") for m in group.members):
        return "heads"
    return group.kind if group.kind in GROUP_KINDS else "channels"


def kind_counts(graph: DependencyGraph, usable: list[int], targets: dict[str, float]) -> dict[int, int]:
    """Channels to keep per group under `sparsity.group_targets` (kinds not named keep all)."""
    kinds = {i: group_kind(graph.groups[i]) for i in usable}
    missing = sorted(set(targets) - set(kinds.values()))
    if missing:
        found = ", ".join(sorted(set(kinds.values()))) or "none"
        raise UserError(
            f"sparsity.group_targets: the model has no prunable {missing[0]} groups (it has: {found})"
        )
    sizes = {i: graph.groups[i].size for i in usable}
    return {i: max(1, kept(sizes[i], targets[k])) if k in targets else sizes[i] for i, k in kinds.items()}


def target_counts(
    graph: DependencyGraph,
    rows: dict[int, torch.Tensor],
    scores: dict[str, torch.Tensor],
    sparsity: SparsityConfig,
) -> dict[int, int]:
    """Channels to keep per usable group (the keys of `rows`, its channels' scores) so that
    `sparsity.target` of the weights go."""
    usable = list(rows)
    per = {i: channel_weights(graph.groups[i], scores) for i in usable}
    total = sum(s.numel() for s in scores.values())
    capacity = sum(graph.groups[i].size * per[i] for i in usable)
    removable = sparsity.target * total
    if removable > 0 and removable >= capacity:
        reason = f"; {graph.notes[0]}" if graph.notes else ""
        raise UserError(
            f"sparsity.target: {sparsity.target} is too high for channel structure (only "
            f"{capacity / max(total, 1):.1%} of the weights are in channel-prunable groups{reason})"
        )
    if not usable:
        return {}
    return channel_counts(rows, per, 1.0 - removable / capacity, sparsity.distribution)


def channel_masks(scores: dict[str, torch.Tensor], sparsity: SparsityConfig, graph: DependencyGraph) -> Masks:
    """Whole-channel masks over the graph's groups; weights outside usable groups stay dense."""
    usable = usable_groups(graph, scores)
    rows = {i: group_score(graph.groups[i], scores, sparsity.channel_reduce) for i in usable}
    if sparsity.group_targets:
        counts = kind_counts(graph, usable, sparsity.group_targets)
    else:
        counts = target_counts(graph, rows, scores, sparsity)
    if not usable:
        return {n: torch.ones(s.shape, dtype=torch.bool, device=s.device) for n, s in scores.items()}
    keep: dict[int, torch.Tensor] = {}
    for i in usable:
        alive = int(torch.isfinite(rows[i]).sum())  # channels pruned earlier (-inf) never come back
        keep[i] = top_k_mask(rows[i], min(counts[i], alive)).cpu()
    return group_masks(graph, keep, scores)


def channel_notes(graph: DependencyGraph, scores: dict[str, torch.Tensor]) -> list[str]:
    """What the channel structure can prune, and which groups stay dense and why."""
    usable = set(usable_groups(graph, scores))
    total = sum(s.numel() for s in scores.values())
    capacity = sum(graph.groups[i].size * channel_weights(graph.groups[i], scores) for i in usable)
    dense: dict[str, list[str]] = {}
    for i, group in enumerate(graph.groups):
        producers = [m.module for m in zeroed_members(group) if _name(m) in scores]
        if i not in usable and producers:
            reason = group.note or "a member is excluded from pruning"
            reason = reason.replace("model output", "model output: the classifier")
            dense.setdefault(reason, []).extend(producers)
    kept = "; ".join(f"{', '.join(sorted(set(mods)))} ({why})" for why, mods in sorted(dense.items()))
    note = (
        f"sparsity.structure channel: {capacity / max(total, 1):.1%} of the prunable weights are in "
        "prunable channel groups (residual-coupled channels are pruned together)"
    )
    return [note + (f"; kept dense: {kept}." if kept else "."), *graph.notes]
