"""How much to keep per layer: uniform, ERK and global allocation of a sparsity target.

Separate from *what* to keep (a method's scores): `allocate_masks` turns any scores
into masks that reach the target exactly (to the nearest whole weight).
"""

from __future__ import annotations

from math import prod

import torch

from paiexport.sparsity.counts import kept
from paiexport.sparsity.topk import top_k_mask
from paiexport.sparsity.types import Distribution, Masks


def total_keep(sizes: dict[str, int], target: float) -> int:
    """Weights a `target` keeps of all the layers together (`counts.kept`)."""
    return kept(sum(sizes.values()), target)


def erk_densities(shapes: dict[str, tuple[int, ...]], density: float) -> dict[str, float]:
    """Erdős–Rényi-kernel densities (Evci et al. 2020, RigL, Appendix).

    density_l = eps * sum(shape_l) / prod(shape_l), with eps chosen so the kept count
    matches `density` overall. Layers that would exceed density 1 are made dense and
    eps is solved again over the rest.
    Reference: https://arxiv.org/abs/1911.11134
    """
    sizes = {n: prod(s) for n, s in shapes.items()}
    raw = {n: sum(s) / prod(s) for n, s in shapes.items()}
    budget = density * sum(sizes.values())
    dense: set[str] = set()
    while True:
        free = [n for n in shapes if n not in dense]
        if not free:
            return {n: 1.0 for n in shapes}
        eps = (budget - sum(sizes[n] for n in dense)) / sum(raw[n] * sizes[n] for n in free)
        over = [n for n in free if eps * raw[n] > 1.0]
        if not over:
            return {n: (1.0 if n in dense else eps * raw[n]) for n in shapes}
        dense.update(over)


def _round_to_total(wanted: dict[str, float], caps: dict[str, int], total: int) -> dict[str, int]:
    """Integer counts close to `wanted` that sum to exactly `total` (largest remainder)."""
    counts = {n: min(int(w), caps[n]) for n, w in wanted.items()}
    short = total - sum(counts.values())
    by_remainder = sorted(wanted, key=lambda n: (-(wanted[n] - int(wanted[n])), n))
    while short > 0:
        progressed = False
        for n in by_remainder:
            if short and counts[n] < caps[n]:
                counts[n] += 1
                short -= 1
                progressed = True
        if not progressed:
            break
    return counts


def layer_keep_counts(
    shapes: dict[str, tuple[int, ...]],
    target: float,
    distribution: Distribution,
    caps: dict[str, int] | None = None,
) -> dict[str, int]:
    """Weights to keep per layer for uniform or ERK (global has no per-layer counts).

    `caps` bounds each layer (default: its size); what a capped layer cannot take goes to
    layers with room, so the total stays exact while it fits.
    """
    sizes = {n: prod(s) for n, s in shapes.items()}
    keep = total_keep(sizes, target)
    if distribution is Distribution.uniform:
        wanted = {n: (1.0 - target) * sizes[n] for n in shapes}
    elif distribution is Distribution.erk:
        densities = erk_densities(shapes, 1.0 - target)
        wanted = {n: densities[n] * sizes[n] for n in shapes}
    else:
        raise ValueError(f"{distribution.value} allocation has no per-layer counts")
    return _round_to_total(wanted, sizes if caps is None else caps, keep)


def allocate_masks(scores: dict[str, torch.Tensor], target: float, distribution: Distribution) -> Masks:
    """Keep the highest scores: per layer (uniform/ERK) or across all layers (global).

    A score of -inf marks a weight pruned earlier (iterative rounds, LTH levels, GMP): it is
    never kept again, so masks only shrink.
    """
    alive = {n: int(torch.isfinite(s).sum()) for n, s in scores.items()}
    if distribution is Distribution.global_:
        names = list(scores)
        flat = torch.cat([scores[n].detach().flatten().double() for n in names])
        sizes = {n: scores[n].numel() for n in names}
        joint = top_k_mask(flat, min(total_keep(sizes, target), sum(alive.values())))
        masks, start = {}, 0
        for n in names:
            masks[n] = joint[start : start + sizes[n]].view_as(scores[n])
            start += sizes[n]
        return masks
    shapes = {n: tuple(s.shape) for n, s in scores.items()}
    counts = layer_keep_counts(shapes, target, distribution, caps=alive)
    return {n: top_k_mask(s, counts[n]) for n, s in scores.items()}
