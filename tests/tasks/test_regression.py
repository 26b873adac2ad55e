"""Regression: mse/l1/huber, R² (primary, column mean), MAE, RMSE, the training-mean baseline and
standardized targets measured in their own units."""

from __future__ import annotations

import math

import pytest
import torch
from sklearn.metrics import mean_absolute_error, r2_score

from paiexport.errors import UserError
from paiexport.tasks import make_task
from paiexport.tasks.regression import Regression, RegressionConfig

Y = torch.tensor([1.0, 2.0, 3.0, 4.0])
PRED = torch.tensor([[1.0], [3.0], [2.0], [4.0]])  # one output column per sample


def task(**fields) -> Regression:
    return make_task(RegressionConfig(**fields))


def measured(t: Regression, outputs: torch.Tensor, y: torch.Tensor, batch: int = 100) -> dict[str, float]:
    meter = t.meter()
    for i in range(0, len(y), batch):
        meter.add(outputs[i : i + batch], t.targets(y[i : i + batch], "data.test"))
    return meter.result()


def test_r2_mae_rmse_by_hand_and_as_scikit_learn():
    # errors [0, 1, -1, 0]: SSE 2; mean 2.5, SST 2.25 + 0.25 + 0.25 + 2.25 = 5 -> R² 1 - 2/5 = 0.6
    # MAE 2 / 4 = 0.5; RMSE sqrt(2 / 4)
    found = measured(task(), PRED, Y)
    assert found == pytest.approx({"r2": 0.6, "mae": 0.5, "rmse": math.sqrt(0.5)})
    assert found["r2"] == pytest.approx(r2_score(Y, PRED[:, 0]))
    assert found["mae"] == pytest.approx(mean_absolute_error(Y, PRED[:, 0]))


def test_batches_sum_to_the_whole_split():
    assert measured(task(), PRED, Y, batch=3) == pytest.approx(measured(task(), PRED, Y))


def test_r2_is_the_mean_over_columns():
    # column a as above (0.6); column b: y [0, 0, 2, 2], pred [0, 1, 2, 2]: SSE 1, SST 4 -> 0.75
    y = torch.stack([Y, torch.tensor([0.0, 0.0, 2.0, 2.0])], dim=1)
    pred = torch.stack([PRED[:, 0], torch.tensor([0.0, 1.0, 2.0, 2.0])], dim=1)
    found = measured(task(), pred, y)
    assert found["r2"] == pytest.approx(0.675)
    assert found["r2"] == pytest.approx(r2_score(y, pred, multioutput="uniform_average"))
    # MAE over all 8 values: (2 + 1) / 8; RMSE: sqrt((2 + 1) / 8)
    assert (found["mae"], found["rmse"]) == pytest.approx((3 / 8, math.sqrt(3 / 8)))


@pytest.mark.parametrize(("loss", "expected"), [("mse", 4.5), ("l1", 1.5), ("huber", 1.25)])
def test_the_three_losses(loss, expected):
    # errors [0, 3]: mse (0 + 9) / 2; l1 (0 + 3) / 2; huber (delta 1): (0 + (3 - 1/2)) / 2
    out, y = torch.tensor([[0.0], [3.0]]), torch.tensor([0.0, 0.0])
    assert float(task(loss=loss).loss(out, y)) == pytest.approx(expected)


def test_baseline_is_the_training_mean_and_at_baseline_has_a_margin():
    # training mean 1, predicted for Y: SSE 0 + 1 + 4 + 9 = 14, SST 5 -> R² = 1 - 14/5 = -1.8
    t = task()
    assert t.baseline(torch.tensor([0.0, 2.0]), Y, 1) == pytest.approx(-1.8)
    # at baseline: at most max(baseline, 0) + 0.01
    assert t.at_baseline(0.01, -1.8) and not t.at_baseline(0.02, -1.8)
    assert t.at_baseline(0.51, 0.5) and not t.at_baseline(0.52, 0.5)


def test_standardized_targets_round_trip_to_their_own_units():
    # training targets [10, 20, 30]: mean 20, population std sqrt(200 / 3)
    train = torch.tensor([10.0, 20.0, 30.0])
    t = task(standardize=True)
    t.fit(train)
    std = math.sqrt(200 / 3)
    assert t.metadata() == {"target_mean": [20.0], "target_std": [pytest.approx(std)]}
    outputs = ((train - 20.0) / std)[:, None]  # what a perfect model learns
    assert torch.allclose(t.predictions(outputs, train), train)
    assert float(t.loss(outputs, train)) == pytest.approx(0.0, abs=1e-10)
    # a model off by 0.1 standardized unit is off by 0.1 * std in the targets' units
    found = measured(t, outputs + 0.1, train)
    assert (found["mae"], found["rmse"]) == pytest.approx((0.1 * std, 0.1 * std))


def test_without_standardize_fit_changes_nothing():
    t = task()
    t.fit(torch.tensor([10.0, 20.0]))
    assert t.metadata() == {} and torch.equal(t.predictions(PRED, Y), PRED[:, 0])


@pytest.mark.parametrize(
    ("y", "says"),
    [
        (torch.tensor([1, 2]), "targets are int64(2,); regression targets are floats (nothing is cast)"),
        (torch.tensor([1.0, float("nan")]), "targets hold NaN/inf"),
        (torch.tensor([1.0, float("inf")]), "targets hold NaN/inf"),
    ],
)
def test_targets_that_are_not_finite_floats_are_refused_naming_task_and_where(y, says):
    with pytest.raises(UserError) as err:
        task().targets(y, "data.train")
    assert str(err.value) == f"task.name regression: data.train: {says}"


def test_output_size_is_the_values_per_sample():
    assert task().output_size(Y, Y, None) == 1
    assert task().output_size(torch.zeros(4, 2, 3), torch.zeros(1, 2, 3), None) == 6


def test_outputs_must_hold_one_value_per_target_value():
    task().check_outputs(torch.zeros(4, 6), torch.zeros(4, 2, 3), "model output")
    with pytest.raises(
        UserError, match=r"model output: output of shape \(4, 5\) for targets of shape \(4, 2, 3\)"
    ):
        task().check_outputs(torch.zeros(4, 5), torch.zeros(4, 2, 3), "model output")


def test_describes_itself_as_r2():
    t = task()
    assert (t.primary, t.short, t.percent, t.higher_is_better) == ("r2", "r2", False, True)


def test_a_constant_column_has_r2_zero_not_a_huge_negative_from_rounding():
    # SST is 0: R² is 0 by the rule (sklearn also gives 0 for an imperfect fit); sum(y²) - sum(y)²/n
    # of 1000 float32 0.1s is not 0 in float64, and 1 - SSE / (rounding error) was about -5e13
    y = torch.full((1000,), 0.1)
    assert measured(task(), (y + 0.01)[:, None], y)["r2"] == 0.0
    assert task().baseline(y[:10], y, 1) == 0.0


def test_r2_keeps_its_precision_far_from_zero():
    # targets 1e7 + {0..3}: summing y and y² directly cancels ~9 of float64's 16 digits
    g = torch.Generator().manual_seed(0)
    y = 1e7 + torch.randint(0, 4, (1000,), generator=g).float()
    pred = y + 0.5 * torch.randn(1000, generator=g)
    expected = r2_score(y.double(), pred.double())
    assert measured(task(), pred[:, None], y)["r2"] == pytest.approx(expected, abs=1e-9)
