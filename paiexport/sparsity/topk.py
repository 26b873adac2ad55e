"""Top-k selection: the one place that decides which scores are "the k highest".

Allocation (uniform, ERK, global), channel and N:M structure, the dynamic methods' drop
and grow, and the selection methods' (edge-popup, supermask) masks all call `top_k_mask`,
so every method breaks ties the same way and a mask never depends on the sort kernel.
"""

from __future__ import annotations

import torch


def top_k_mask(scores: torch.Tensor, k: int, dim: int | None = None) -> torch.Tensor:
    """Bool mask (shape and device of `scores`) of the `k` highest scores.

    With `dim=None` the k are chosen over all elements; with `dim`, k are chosen in every
    slice along `dim` (N:M groups). `k` is clamped to [0, size].

    Tie rule: among equal scores the LOWER INDEX wins — the earlier position in row-major
    (flattened) order, or along `dim`. Scores are compared as float64 (exact for float32
    and float16 inputs), so the choice does not depend on dtype. `-0.0` equals `0.0`;
    `-inf` ranks below every finite score and NaN below everything, so callers that must
    never pick `-inf` (weights pruned earlier) cap `k` by the count of finite scores.
    """
    values = scores.detach().double()
    along = 0 if dim is None else dim
    if dim is None:
        values = values.flatten()
    k = max(0, min(int(k), values.shape[along]))
    # A stable sort of the negated scores: descending, equal scores kept in index order.
    order = torch.argsort(-values, dim=along, stable=True).narrow(along, 0, k)
    keep = torch.zeros_like(values, dtype=torch.bool).scatter_(along, order, True)
    return keep.view(scores.shape)
