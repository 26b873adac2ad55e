"""Accuracy, parity and sparsity tolerances and the comparison rules, written once.

`validate_file` (a run's files), `paiexport validate` (one file), the deploy choice and the
`max_accuracy_drop` and `min_sparsity` gates all judge with these functions, so a file is
never within a limit in one place and over it in another.
"""

from __future__ import annotations

import numpy as np

PARITY_ATOL = 1e-4  # float32 reassociation between runtimes stays far below this
PARITY_BATCH = 256  # parity is measured on the first PARITY_BATCH test samples
DROP_SLACK = 1e-9  # points come from a difference of two fractions: float noise must not fail the limit
SPARSITY_SLACK_WEIGHTS = 1  # a target is rounded to whole weights: a 90% run may reach 0.899998


def parity_diff(logits: np.ndarray, reference: np.ndarray) -> float:
    """Largest absolute logit difference on the parity batch."""
    return float(np.abs(logits[:PARITY_BATCH] - reference[:PARITY_BATCH]).max())


def within_parity(diff: float) -> bool:
    return diff <= PARITY_ATOL


def accuracies_match(accuracy: float, reference: float, samples: int) -> bool:
    """Same predictions up to float noise: a flipped near-tie per thousand samples is allowed."""
    return abs(accuracy - reference) <= max(1, samples // 1000) / max(samples, 1)


def accuracy_drop_points(reference: float, accuracy: float) -> float:
    """Percentage points `accuracy` lies below `reference` (negative: above)."""
    return (reference - accuracy) * 100


def within_drop_limit(drop: float, limit: float) -> bool:
    """A drop of at most `limit` points passes (a drop exactly at the limit passes)."""
    return drop <= limit + DROP_SLACK


def points(drop: float, limit: float) -> str:
    """A drop in points with enough digits to tell it from `limit` (1.04 vs 1.0: '1.04')."""
    digits = 1
    while digits < 4 and (round(drop, digits) <= limit) != within_drop_limit(drop, limit):
        digits += 1
    return f"{drop:.{digits}f}"


def over_limit_reason(drop: float, limit: float, unit: str = "pt") -> str:
    """Why a lossy file over the limit is not deployable ("−1.04 pt > 1.0: not deployable")."""
    return f"−{points(drop, limit)} {unit} > {limit}: not deployable"


def reaches_sparsity(zeros: int, total: int, limit: float) -> bool:
    """`zeros` of `total` weights meet the minimum sparsity `limit`, up to
    `SPARSITY_SLACK_WEIGHTS` weights short (and float noise in `limit * total`)."""
    return zeros >= limit * total - SPARSITY_SLACK_WEIGHTS - 1e-9
