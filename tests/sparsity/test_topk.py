"""The one top-k selection and its tie rule (lower index wins), checked on tiny tensors with ties."""

from __future__ import annotations

import math

import torch

from paiexport.methods.dynamic import top_k_among
from paiexport.methods.selection import top_k
from paiexport.sparsity.allocation import allocate_masks
from paiexport.sparsity.structure import nm_masks
from paiexport.sparsity.topk import top_k_mask
from paiexport.sparsity.types import Distribution, NMPattern


def test_ties_go_to_the_lower_flat_index() -> None:
    scores = torch.tensor([[1.0, 3.0, 2.0], [3.0, 2.0, 3.0]])
    # 3.0 at flat 1, 3, 5; k=2 keeps flat 1 and 3, not 5.
    assert top_k_mask(scores, 2).tolist() == [[False, True, False], [True, False, False]]
    # Then the 2.0s: flat 2 before flat 4.
    assert top_k_mask(scores, 4).tolist() == [[False, True, True], [True, False, True]]


def test_all_equal_keeps_the_first_k() -> None:
    assert top_k_mask(torch.ones(8), 3).tolist() == [True] * 3 + [False] * 5
    assert top_k_mask(torch.zeros(2, 2), 0).sum() == 0
    assert top_k_mask(torch.zeros(2, 2), 9).all()  # k clamped to the size


def test_along_a_dimension_each_row_keeps_its_first_ties() -> None:
    groups = torch.tensor([[5.0, 5.0, 5.0, 5.0], [0.0, 2.0, 2.0, 1.0], [-0.0, 0.0, -1.0, 0.0]])
    assert top_k_mask(groups, 2, dim=1).tolist() == [
        [True, True, False, False],
        [False, True, True, False],
        [True, True, False, False],  # -0.0 equals 0.0: the lower index wins
    ]


def test_minus_inf_and_nan_rank_last() -> None:
    scores = torch.tensor([float("nan"), -math.inf, -5.0, float("nan")])
    assert top_k_mask(scores, 2).tolist() == [False, True, True, False]


def test_selection_masks_use_the_same_rule() -> None:
    """Edge-popup/supermask: `torch.topk(sorted=False)` took the last of the ties."""
    scores = torch.tensor([0.0, 1.0, 1.0, 1.0, 1.0, 0.0], dtype=torch.float32)
    mask = top_k(scores, 2)
    assert mask.dtype == torch.float32 and mask.tolist() == [0.0, 1.0, 1.0, 0.0, 0.0, 0.0]


def test_dynamic_drop_and_grow_use_the_same_rule() -> None:
    scores = torch.tensor([[2.0, 2.0], [2.0, 2.0]])
    allowed = torch.tensor([[False, True], [True, True]])
    assert top_k_among(scores, allowed, 2).tolist() == [[False, True], [True, False]]
    assert top_k_among(scores, allowed, 5).tolist() == allowed.tolist()  # never outside `allowed`


def test_allocation_and_nm_structure_use_the_same_rule() -> None:
    scores = {"a": torch.ones(2, 4), "b": torch.ones(1, 4)}
    masks = allocate_masks(scores, 0.5, Distribution.uniform)
    assert masks["a"].tolist() == [[True, True, True, True], [False, False, False, False]]
    assert masks["b"].tolist() == [[True, True, False, False]]
    nm = nm_masks({"w": torch.ones(1, 4)}, NMPattern(n=2, m=4))
    assert nm["w"].tolist() == [[True, True, False, False]]
