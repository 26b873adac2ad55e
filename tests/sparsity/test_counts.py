"""How many weights a fraction keeps: the one rounding rule (sparsity/counts)."""

from paiexport.sparsity.counts import kept, kept_at_density, removed


def test_kept_counts_by_hand():
    assert kept(3, 0.5) == 2 and removed(3, 0.5) == 1  # 1.5 kept: ties to even
    assert kept(5, 0.5) == 2 and kept(1, 0.5) == 0  # 2.5 -> 2, 0.5 -> 0
    assert kept(10, 0.9) == 1 and kept(160, 0.9) == 16 and kept(7, 0.0) == 7 and kept(7, 1.0) == 0
    assert kept(0, 0.5) == 0 and kept_at_density(4, 0.6) == 2  # 2.4
