"""The mask-update schedules in `sparsity/schedules`, against hand-computed values."""

from __future__ import annotations

import pytest

from paiexport.errors import UserError
from paiexport.sparsity.schedules import (
    DropSchedule,
    RoundSchedule,
    cubic_sparsity,
    dynamic_drop_fraction,
    gmp_update_due,
    level_densities,
    round_densities,
)


def test_cubic_sparsity_by_hand() -> None:
    # t0=10, t_end=30, 0.2 -> 0.9: at t=20 half-way, (1 - 0.5)^3 = 0.125 -> 0.9 - 0.7 * 0.125
    assert cubic_sparsity(20, 10, 30, 0.2, 0.9) == pytest.approx(0.8125)
    assert cubic_sparsity(15, 10, 30, 0.2, 0.9) == pytest.approx(0.9 - 0.7 * 0.75**3)
    assert cubic_sparsity(9, 10, 30, 0.2, 0.9) == 0.2 and cubic_sparsity(31, 10, 30, 0.2, 0.9) == 0.9
    assert cubic_sparsity(0, 0, 100, 0.0, 0.9) == 0.0
    assert cubic_sparsity(50, 0, 100, 0.0, 0.9) == pytest.approx(0.9 - 0.9 * 0.5**3)
    assert cubic_sparsity(25, 0, 100, 0.2, 0.8) == pytest.approx(0.8 - 0.6 * 0.75**3)
    assert cubic_sparsity(100, 0, 100, 0.0, 0.9) == 0.9
    assert cubic_sparsity(150, 0, 100, 0.0, 0.9) == 0.9
    assert cubic_sparsity(5, 10, 100, 0.3, 0.9) == 0.3


def test_gmp_updates_every_dt_from_t0_and_at_the_end() -> None:
    due = [t for t in range(0, 40) if gmp_update_due(t, 10, 33, 10)]
    assert due == [10, 20, 30, 33]


def test_dynamic_drop_fraction_by_hand() -> None:
    kw = {"update_every": 25, "end_fraction": 0.5, "drop_fraction": 0.4}
    # 200 steps, updates stop before step 100: 25, 50, 75.
    cosine = [dynamic_drop_fraction(s, 200, schedule=DropSchedule.cosine, **kw) for s in range(1, 201)]
    assert [s + 1 for s, f in enumerate(cosine) if f is not None] == [25, 50, 75]
    assert cosine[49] == pytest.approx(0.2)  # progress 1/2: 0.4 / 2 · (1 + cos(π/2))
    assert cosine[74] == pytest.approx(0.2 * (1 - 2**-0.5))  # progress 3/4: cos(3π/4) = −1/√2
    assert dynamic_drop_fraction(50, 200, schedule=DropSchedule.linear, **kw) == pytest.approx(0.2)
    assert dynamic_drop_fraction(75, 200, schedule=DropSchedule.constant, **kw) == 0.4
    assert dynamic_drop_fraction(0, 200, schedule=DropSchedule.constant, **kw) is None


def test_round_densities_by_hand() -> None:
    assert round_densities(0.25, 2, RoundSchedule.exponential) == pytest.approx([0.5, 0.25])
    assert round_densities(0.2, 4, RoundSchedule.linear) == pytest.approx([0.8, 0.6, 0.4, 0.2])


def test_level_densities_by_hand() -> None:
    assert level_densities(0.125, 3, None) == pytest.approx([0.5, 0.25, 0.125])
    assert level_densities(0.3, 4, 0.5) == pytest.approx([0.5, 0.3])  # 0.25 would overshoot: clipped
    with pytest.raises(UserError, match=r"method\.levels: 2 levels .* use levels >= 4"):
        level_densities(0.1, 2, 0.5)  # 0.5^2 = 0.25 > 0.1; 0.5^4 = 0.0625 is the first below
    assert level_densities(0.1, 3, None) == pytest.approx([0.1 ** (1 / 3), 0.1 ** (2 / 3), 0.1])
    assert level_densities(0.5, 5, 0.2) == pytest.approx([0.8, 0.64, 0.512, 0.5])  # stops at the target
    with pytest.raises(UserError, match=r"method\.levels.*levels >= 11"):
        level_densities(0.1, 3, 0.2)
