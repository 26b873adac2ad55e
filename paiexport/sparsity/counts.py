"""How many weights a fraction keeps: the one rounding rule.

Allocation (a target over layers), channel structure, GMP groups and the dynamic methods'
drop all count weights here, so a fraction of n weights never keeps different numbers in
different places. The rule is allocation's: the whole number nearest `(1 - sparsity) * n`,
ties to even (Python's `round`): 3 weights at 50% keep 2, 5 at 50% keep 2.
"""

from __future__ import annotations


def kept_at_density(n: int, density: float) -> int:
    """Of `n` weights, how many a `density` (fraction kept) keeps: round(density * n), in [0, n]."""
    return min(n, max(0, round(density * n)))


def kept(n: int, sparsity: float) -> int:
    """Of `n` weights, how many survive removing the fraction `sparsity`."""
    return kept_at_density(n, 1.0 - sparsity)


def removed(n: int, sparsity: float) -> int:
    """Of `n` weights, how many removing the fraction `sparsity` zeroes: `n - kept(n, sparsity)`."""
    return n - kept(n, sparsity)
