"""Gradual pruning schedule math (SparseML semantics): interpolation, epochs of steps, update epochs."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from paiexport.errors import UserError
from paiexport.sparsity.gradual import epoch_of_step, interpolate, pruning_update_epochs, resolve_params


def schedule(start: float, end: float, every: float) -> SimpleNamespace:
    return SimpleNamespace(
        start_epoch=start, end_epoch=end, update_frequency=every, init_sparsity=0.0, inter_func="cubic"
    )


def test_interpolate_cubic_and_linear_by_hand():
    # p = (2.5 - 1) / 6 = 0.25: cubic 1 - 0.75^3 = 0.578125, so 0.05 + 0.65 * 0.578125
    assert interpolate(2.5, 1.0, 7.0, 0.05, 0.7, "cubic") == pytest.approx(0.42578125)
    assert interpolate(2.0, 0.0, 8.0, 0.2, 1.0, "linear") == pytest.approx(0.4)
    # the ends are exact, not float noise
    assert interpolate(1.0, 1.0, 7.0, 0.05, 0.7, "cubic") == 0.05
    assert interpolate(7.0, 1.0, 7.0, 0.05, 0.7, "cubic") == 0.7
    with pytest.raises(ValueError, match="unsupported inter_func 'exp'"):
        interpolate(1.0, 0.0, 2.0, 0.0, 1.0, "exp")


def test_epoch_of_step_is_fractional():
    assert epoch_of_step(0, 3) == 0.0 and epoch_of_step(7, 4) == 1.75 and epoch_of_step(8, 4) == 2.0


def test_updates_at_start_every_frequency_and_at_end():
    # 2 steps per epoch: the epochs seen are 0, 0.5, 1.0, 1.5, 2.0
    assert pruning_update_epochs(schedule(1.0, 2.0, 0.5), steps_per_epoch=2) == [1.0, 1.5, 2.0]


def test_updates_wait_for_the_next_step_of_the_grid():
    # 3 steps per epoch: 1.5 is no step, so the update comes at 5/3; 2.0 comes as the end update
    updates = pruning_update_epochs(schedule(1.0, 2.0, 0.5), steps_per_epoch=3)
    assert updates == pytest.approx([1.0, 5 / 3, 2.0])


def test_training_shorter_than_the_schedule_stops_its_updates():
    assert pruning_update_epochs(schedule(1.0, 2.0, 0.5), steps_per_epoch=2, total_steps=4) == [1.0, 1.5]


def test_resolve_params_keeps_model_order_and_names_bad_patterns():
    names = ["a.weight", "b.weight", "c.weight"]
    assert resolve_params(["c.weight", "re:a"], names) == ["a.weight", "c.weight"]
    assert resolve_params(["re:.*weight"], names) == names  # re.match: anchored at the start
    assert resolve_params(["__ALL_PRUNABLE__"], names) == names
    with pytest.raises(
        UserError, match=r"^method.groups\[0\].params: 're:\(' is not a valid regular expression"
    ):
        resolve_params(["re:("], names, where="method.groups[0].params")
    with pytest.raises(UserError, match="'re:weight' matches no prunable weight of the model"):
        resolve_params(["re:weight"], names)
