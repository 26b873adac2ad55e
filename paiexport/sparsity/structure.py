"""Structured selection: whole channels/neurons, or N:M groups, from any criterion's scores.

`channel` prunes whole channels of the channel groups found by the dependency graph
(`depgraph.py`; residual-coupled channels are pruned together, the classifier's outputs and
the model's inputs never): see `channels.py` for scoring, allocation and what the target
counts. The pruned rows are removed physically by `paiexport.export.compact`.

`N:M` keeps the N highest scores in every group of M consecutive weights along the input
dimension (input channels for convolutions). onnxruntime has no N:M kernels on CPU: it is a
storage/validation format today, not a speedup.

Reference: Li et al. 2017, "Pruning Filters for Efficient ConvNets",
https://arxiv.org/abs/1608.08710 (channel scores by row norm); Mishra et al. 2021,
"Accelerating Sparse Deep Neural Networks", https://arxiv.org/abs/2104.08378 (2:4 sparsity).
"""

from __future__ import annotations

import torch
from torch import nn

from paiexport.inputs import Inputs, take, to_device
from paiexport.sparsity.allocation import allocate_masks
from paiexport.sparsity.channels import channel_masks, channel_notes
from paiexport.sparsity.depgraph import DependencyGraph, build_graph
from paiexport.sparsity.masks import prunable_modules
from paiexport.sparsity.topk import top_k_mask
from paiexport.sparsity.types import Masks, NMPattern, SparsityConfig, StructureKind


def model_graph(model: nn.Module, example: Inputs) -> DependencyGraph:
    """The channel groups of `model`, traced with (a couple of samples like) `example`."""
    device = next(model.parameters()).device
    return build_graph(model, to_device(take(example, slice(None, 2)), device))


def select_structured(
    scores: dict[str, torch.Tensor], model: nn.Module, sparsity: SparsityConfig, example: Inputs
) -> Masks:
    """Masks for `sparsity.structure` from per-weight scores (keyed like `prunable_modules`).

    `example` is a representative input batch; `channel` traces the model with it.
    """
    if isinstance(sparsity.structure, NMPattern):
        return nm_masks(scores, sparsity.structure)
    if sparsity.structure is StructureKind.channel:
        return channel_masks(scores, sparsity, model_graph(model, example))
    return allocate_masks(scores, sparsity.target, sparsity.distribution)


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


def structure_notes(
    model: nn.Module, sparsity: SparsityConfig, weights: dict[str, torch.Tensor], example: Inputs
) -> list[str]:
    """What the structure left dense, and why, for report.json's `notes`."""
    if isinstance(sparsity.structure, NMPattern):
        m = sparsity.structure.m
        skipped = [n for n, w in prunable_modules(model).items() if n in weights and w.weight.shape[1] % m]
        note = (
            f"sparsity.structure {sparsity.structure}: a storage/validation format; onnxruntime has "
            "no N:M kernels on CPU, so it gives no speed by itself. sparsity.target is not used: "
            f"N:M fixes the sparsity of each layer at {1 - sparsity.structure.n / m:.0%}."
        )
        if skipped:
            note += f" Input dimension not a multiple of {m}, kept dense: {', '.join(skipped)}."
        return [note]
    if sparsity.structure is StructureKind.channel:
        return channel_notes(model_graph(model, example), weights) + group_target_notes(sparsity)
    return []


def group_target_notes(sparsity: SparsityConfig) -> list[str]:
    """What `sparsity.group_targets` did, and that `sparsity.target` did not set the channels."""
    if not sparsity.group_targets:
        return []
    named = ", ".join(f"{kind} {f:.0%}" for kind, f in sparsity.group_targets.items())
    return [
        f"sparsity.group_targets: every prunable group lost that share of its channels ({named}; "
        "other kinds kept all theirs); sparsity.target only paces a schedule, and the weights "
        "removed are the reached sparsity"
    ]
