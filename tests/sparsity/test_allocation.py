import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from paiexport.sparsity.allocation import allocate_masks, erk_densities, layer_keep_counts
from paiexport.sparsity.types import Distribution


def test_erk_by_hand_two_layers():
    # raw_A = (4+2)/8 = 0.75, raw_B = (2+8)/16 = 0.625; keep 18 of 24 at 25% sparsity:
    # eps = 18 / (0.75*8 + 0.625*16) = 1.125 -> d_A = 0.84375 (6.75 w), d_B = 0.703125 (11.25 w)
    shapes = {"A": (4, 2), "B": (2, 8)}
    d = erk_densities(shapes, 0.75)
    assert d["A"] == pytest.approx(0.84375) and d["B"] == pytest.approx(0.703125)
    # Largest remainder: A (0.75) gets the missing weight -> 7 + 11 = 18 exactly.
    assert layer_keep_counts(shapes, 0.25, Distribution.erk) == {"A": 7, "B": 11}


def test_erk_dense_fallback():
    # raw_A = 4/4 = 1, raw_B = 16/64 = 0.25; keep 34 of 68: eps = 34/20 = 1.7 -> d_A > 1,
    # so A is dense (4 w) and eps = 30/16 -> d_B = 0.46875 (30 w).
    shapes = {"A": (2, 2), "B": (8, 8)}
    d = erk_densities(shapes, 0.5)
    assert d == {"A": 1.0, "B": pytest.approx(0.46875)}
    assert layer_keep_counts(shapes, 0.5, Distribution.erk) == {"A": 4, "B": 30}


def test_erk_conv_uses_kernel_dims():
    # (out, in, k) = (4, 2, 3): sum 9 / prod 24
    d = erk_densities({"c": (4, 2, 3), "l": (10, 24)}, 0.1)
    assert max(d.values()) < 1.0  # no dense fallback in play
    assert d["c"] / d["l"] == pytest.approx((9 / 24) / (34 / 240))


def test_uniform_layers_each_reach_target():
    scores = {"a": torch.rand(10, 10), "b": torch.rand(3, 7)}
    masks = allocate_masks(scores, 0.7, Distribution.uniform)
    assert int(masks["a"].sum()) == 30
    assert int(masks["b"].sum()) in (6, 7)  # 6.3 rounds to exact total 36 overall
    assert sum(int(m.sum()) for m in masks.values()) == round(0.3 * 121)


def test_masks_keep_the_highest_scores():
    scores = {"a": torch.tensor([[0.1, 0.9], [0.5, 0.3]])}
    mask = allocate_masks(scores, 0.5, Distribution.uniform)["a"]
    assert mask.tolist() == [[False, True], [True, False]]


def test_global_picks_across_layers():
    scores = {"a": torch.tensor([1.0, 2.0, 3.0]), "b": torch.tensor([10.0, 20.0, 0.5])}
    masks = allocate_masks(scores, 0.5, Distribution.global_)
    assert masks["a"].tolist() == [False, False, True]
    assert masks["b"].tolist() == [True, True, False]


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.tuples(st.integers(1, 12), st.integers(1, 12)), min_size=1, max_size=4),
    target=st.floats(0.0, 0.99),
    distribution=st.sampled_from(list(Distribution)),
)
def test_exact_overall_sparsity(sizes, target, distribution):
    scores = {f"l{i}": torch.rand(*s) for i, s in enumerate(sizes)}
    masks = allocate_masks(scores, target, distribution)
    total = sum(s.numel() for s in scores.values())
    kept = sum(int(m.sum()) for m in masks.values())
    assert kept == round((1 - target) * total)
    for name, mask in masks.items():
        assert mask.shape == scores[name].shape and mask.dtype == torch.bool


@pytest.mark.parametrize("distribution", list(Distribution))
def test_weights_pruned_earlier_never_come_back(distribution):
    """Rounds at rising sparsity (iterative criteria, LTH, GMP) only ever shrink the masks."""
    g = torch.Generator().manual_seed(0)
    shapes = [(10, 9), (9, 7), (7, 3)]
    scores = {f"l{i}": torch.rand(*s, generator=g).double() for i, s in enumerate(shapes)}
    masks = None
    for target in [1 - 0.1 ** (k / 100) for k in range(1, 101)]:  # synflow's 100 exponential rounds
        current = (
            scores
            if masks is None
            else {n: s.masked_fill(~masks[n], float("-inf")) for n, s in scores.items()}
        )
        new = allocate_masks(current, target, distribution)
        if masks is not None:
            for n in new:
                assert not (new[n] & ~masks[n]).any(), f"{n} regrew at target {target}"
        masks = new
    assert sum(int(m.sum()) for m in masks.values()) == round(0.1 * sum(s.numel() for s in scores.values()))
