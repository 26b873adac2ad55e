"""Structured selection: whole channels/neurons, or N:M groups, from any criterion's scores.

`channel` reduces each criterion's per-weight scores to one score per output channel or
neuron (`sum`, `mean` or `l2` over the row) and keeps the best channels per layer with the
recipe's distribution (uniform / ERK / global), so the pruned rows can later be removed
physically (`paiexport.export.compact`). Two kinds of layers keep all their channels, and
`structure_notes` says so:

- the classifier (its outputs are the logits), and
- layers whose outputs are joined by an addition (residual connections): pruning them
  independently would not remove a channel of the sum, so they are excluded.

`N:M` keeps the N highest scores in every group of M consecutive weights along the input
dimension (input channels for convolutions). onnxruntime has no N:M kernels on CPU: it is a
storage/validation format today, not a speedup.

Reference: Li et al. 2017, "Pruning Filters for Efficient ConvNets",
https://arxiv.org/abs/1608.08710 (channel scores by row norm); Mishra et al. 2021,
"Accelerating Sparse Deep Neural Networks", https://arxiv.org/abs/2104.08378 (2:4 sparsity).
"""

from __future__ import annotations

import operator

import torch
from torch import fx, nn

from paiexport.errors import UserError
from paiexport.sparsity.allocation import allocate_masks, erk_densities
from paiexport.sparsity.masks import PRUNABLE_TYPES, prunable_modules
from paiexport.sparsity.topk import top_k_mask
from paiexport.sparsity.types import (
    ChannelReduce,
    Distribution,
    Masks,
    NMPattern,
    SparsityConfig,
    StructureKind,
)

# Modules that keep the channel layout of their input (a residual join is found through them).
_CHANNEL_PRESERVING = (nn.BatchNorm1d, nn.BatchNorm2d, nn.ReLU, nn.Identity, nn.Dropout)
_ADD_TARGETS = {operator.add, operator.iadd, torch.add}


def select_structured(scores: dict[str, torch.Tensor], model: nn.Module, sparsity: SparsityConfig) -> Masks:
    """Masks for `sparsity.structure` from per-weight scores (keyed like `prunable_modules`)."""
    if isinstance(sparsity.structure, NMPattern):
        return nm_masks(scores, sparsity.structure)
    if sparsity.structure is StructureKind.channel:
        fixed = channel_excluded(model, list(scores))
        return channel_masks(scores, sparsity, fixed)
    return allocate_masks(scores, sparsity.target, sparsity.distribution)


def reduce_rows(scores: torch.Tensor, how: ChannelReduce) -> torch.Tensor:
    """One score per output channel (row): sum, mean or L2 norm of the row's scores."""
    rows = scores.detach().double().reshape(scores.shape[0], -1)
    if how is ChannelReduce.sum:
        reduced = rows.sum(dim=1)
    elif how is ChannelReduce.mean:
        reduced = rows.mean(dim=1)
    else:
        reduced = rows.norm(dim=1)
    # Iterative rounds mark pruned weights with -inf; the L2 norm would turn that into +inf
    # and revive the channel, so a row holding -inf stays at -inf whatever the reduction.
    return reduced.masked_fill(torch.isneginf(rows).any(dim=1), float("-inf"))


def _channel_counts(
    rows: dict[str, torch.Tensor], row_sizes: dict[str, int], density: float, distribution: Distribution
) -> dict[str, int]:
    """Channels to keep per layer so that about `density` of the weights stay (at least 1 each)."""
    channels = {n: len(r) for n, r in rows.items()}
    if distribution is Distribution.uniform:
        return {n: max(1, round(density * c)) for n, c in channels.items()}
    if distribution is Distribution.erk:
        shapes = {n: (channels[n], row_sizes[n]) for n in rows}
        dens = erk_densities(shapes, density)
        return {n: max(1, round(dens[n] * channels[n])) for n in rows}
    # global: best channels across layers until the weight budget is spent
    budget = density * sum(channels[n] * row_sizes[n] for n in rows)
    flat = sorted(((float(s), n, i) for n, r in rows.items() for i, s in enumerate(r)), key=lambda t: -t[0])
    counts = dict.fromkeys(rows, 0)
    kept = 0.0
    for _score, n, _i in flat:
        if kept + row_sizes[n] > budget + row_sizes[n] / 2:
            continue
        counts[n] += 1
        kept += row_sizes[n]
    return {n: max(1, c) for n, c in counts.items()}


def channel_masks(scores: dict[str, torch.Tensor], sparsity: SparsityConfig, fixed: set[str]) -> Masks:
    """Whole-row masks; layers in `fixed` stay dense and the others carry the whole target."""
    sizes = {n: s.numel() for n, s in scores.items()}
    free = [n for n in scores if n not in fixed]
    masks: Masks = {n: torch.ones(scores[n].shape, dtype=torch.bool, device=scores[n].device) for n in fixed}
    if not free:
        return masks
    removable = sparsity.target * sum(sizes.values())
    free_total = sum(sizes[n] for n in free)
    if removable >= free_total:
        raise UserError(
            f"sparsity.target: {sparsity.target} is too high for channel structure "
            f"(only {free_total / sum(sizes.values()):.1%} of the weights are in channel-prunable layers)"
        )
    rows = {n: reduce_rows(scores[n], sparsity.channel_reduce) for n in free}
    row_sizes = {n: sizes[n] // len(rows[n]) for n in free}
    counts = _channel_counts(rows, row_sizes, 1.0 - removable / free_total, sparsity.distribution)
    for n in free:
        alive = int(torch.isfinite(rows[n]).sum())  # rows pruned earlier (-inf) never come back
        keep = top_k_mask(rows[n], min(counts[n], alive))
        masks[n] = keep.view(-1, *([1] * (scores[n].dim() - 1))).expand_as(scores[n]).clone()
    return {n: masks[n] for n in scores}


def nm_masks(scores: dict[str, torch.Tensor], pattern: NMPattern) -> Masks:
    """Keep the N highest scores in each group of M along the input dimension.

    Layers whose input dimension is not a multiple of M stay dense (see `structure_notes`).
    """
    masks: Masks = {}
    for name, s in scores.items():
        if s.dim() < 2 or s.shape[1] % pattern.m:
            masks[name] = torch.ones(s.shape, dtype=torch.bool)
            continue
        # (out, in, *k) -> (out, *k, in): groups run along input channels at each kernel position
        moved = s.detach().double().movedim(1, -1)
        groups = moved.reshape(-1, pattern.m)
        keep = top_k_mask(groups, pattern.n, dim=1)
        masks[name] = keep.reshape(moved.shape).movedim(-1, 1).contiguous()
    return masks


def _trace(model: nn.Module) -> fx.GraphModule | None:
    try:
        return fx.symbolic_trace(model)
    except Exception:  # models fx cannot trace are treated as having no residual joins
        return None


def _reaches_add(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    """Does this node's output flow, through channel-preserving ops only, into an addition?"""
    stack, seen = [node], set()
    while stack:
        current = stack.pop()
        for user in current.users:
            if user in seen:
                continue
            seen.add(user)
            if user.op in ("call_function", "call_method") and user.target in (*_ADD_TARGETS, "add", "add_"):
                return True
            preserving = (
                user.op == "call_module" and isinstance(modules[user.target], _CHANNEL_PRESERVING)
            ) or (
                user.op in ("call_function", "call_method")
                and user.target in (torch.relu, "relu", nn.functional.relu)
            )
            if preserving:
                stack.append(user)
    return False


def channel_excluded(model: nn.Module, names: list[str]) -> set[str]:
    """Weights (of `names`) that keep all channels: the classifier and residual-joined layers."""
    graph = _trace(model)
    modules = dict(model.named_modules())
    by_module = {n.removesuffix(".weight").removesuffix("weight"): n for n in names}
    fixed: set[str] = set()
    order: list[str] = []
    if graph is not None:
        for node in graph.graph.nodes:
            if node.op == "call_module" and node.target in by_module:
                order.append(by_module[node.target])
                if _reaches_add(node, modules):
                    fixed.add(by_module[node.target])
    else:
        order = [
            n for n, m in prunable_modules(model).items() if n in names and isinstance(m, PRUNABLE_TYPES)
        ]
    if order:
        fixed.add(order[-1])  # the classifier: its outputs are the logits
    return fixed


def structure_notes(model: nn.Module, sparsity: SparsityConfig, names: list[str]) -> list[str]:
    """What the structure left dense, and why, for report.json's `notes`."""
    if isinstance(sparsity.structure, NMPattern):
        m = sparsity.structure.m
        skipped = [n for n, w in prunable_modules(model).items() if n in names and w.weight.shape[1] % m]
        note = (
            f"sparsity.structure {sparsity.structure}: a storage/validation format; onnxruntime has "
            "no N:M kernels on CPU, so it gives no speed by itself. sparsity.target is not used: "
            f"N:M fixes the sparsity of each layer at {1 - sparsity.structure.n / m:.0%}."
        )
        if skipped:
            note += f" Input dimension not a multiple of {m}, kept dense: {', '.join(skipped)}."
        return [note]
    if sparsity.structure is StructureKind.channel:
        fixed = sorted(channel_excluded(model, names))
        return [
            "sparsity.structure channel keeps every channel of the classifier and of layers joined "
            f"by a residual addition: {', '.join(fixed)}."
        ]
    return []
