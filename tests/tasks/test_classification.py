"""Classification: cross-entropy on class indices, top-1 and (from 5 classes) top-5, chance level."""

from __future__ import annotations

import math

import pytest
import torch

from paiexport.errors import UserError
from paiexport.tasks import make_task, task_by_name
from paiexport.tasks.classification import Classification, ClassificationConfig, chance_level


def task(**fields) -> Classification:
    return make_task(ClassificationConfig(**fields))


def test_loss_is_cross_entropy_with_optional_label_smoothing():
    # logits [0, ln 3]: p = [1/4, 3/4]; class 1 costs ln(4/3)
    logits, y = torch.tensor([[0.0, math.log(3.0)]]), torch.tensor([1])
    assert float(task().loss(logits, y)) == pytest.approx(math.log(4 / 3))
    # smoothing 0.1 over 2 classes: 0.9 * ln(4/3) + 0.1 * (ln 4 + ln(4/3)) / 2
    smoothed = 0.9 * math.log(4 / 3) + 0.1 * (math.log(4.0) + math.log(4 / 3)) / 2
    assert float(task(label_smoothing=0.1).loss(logits, y)) == pytest.approx(smoothed)


def test_accuracy_alone_below_five_classes():
    # argmax [0, 1, 3, 3] against [0, 2, 3, 1]: 2 of 4
    logits = torch.eye(4)[[0, 1, 3, 3]]
    meter = task().meter()
    meter.add(logits, torch.tensor([0, 2, 3, 1]))
    assert meter.result() == {"accuracy": 0.5}


def test_top5_from_five_classes_over_the_whole_split():
    # 6 classes, logits ranking class k at place k (0 best): the top 5 are classes 0..4
    logits = torch.tensor([[5.0, 4.0, 3.0, 2.0, 1.0, 0.0]]).repeat(3, 1)
    meter = task().meter()
    meter.add(logits[:2], torch.tensor([0, 4]))  # top-1 hit; top-5 hit
    meter.add(logits[2:], torch.tensor([5]))  # in neither
    assert meter.result() == pytest.approx({"accuracy": 1 / 3, "top5": 2 / 3})


def test_chance_level_is_the_best_guess_plus_three_standard_errors():
    # 100 balanced labels of 10 classes: p = 0.1, se = sqrt(0.1 * 0.9 / 100) = 0.03 -> 0.19
    labels = torch.arange(100) % 10
    assert chance_level(labels, 10) == pytest.approx(0.19)
    # 3 of 4 labels are class 0: p = 3/4 beats 1/4, se = sqrt(3/16 / 4)
    assert chance_level(torch.tensor([0, 0, 0, 1]), 4) == pytest.approx(0.75 + 3 * math.sqrt(3 / 64))
    assert task().baseline(torch.tensor([0, 1]), labels, 10) == pytest.approx(0.19)


@pytest.mark.parametrize(
    ("y", "says"),
    [
        (torch.tensor([0.0, 1.0]), "targets are float32(2,); class indices are integers (nothing is cast)"),
        (torch.tensor([True, False]), "targets are bool(2,); class indices are integers (nothing is cast)"),
        (torch.tensor([[0, 1]]), "targets have shape (1, 2); one class index per sample"),
        (torch.tensor([0, -1]), "target -1 outside [0, inf)"),
    ],
)
def test_targets_that_are_not_class_indices_are_refused_naming_task_and_where(y, says):
    with pytest.raises(UserError) as err:
        task().targets(y, "data.train")
    assert str(err.value) == f"task.name classification: data.train: {says}"


def test_integer_targets_become_int64():
    y = task().targets(torch.tensor([2, 0], dtype=torch.int32), "data.train")
    assert y.dtype == torch.int64 and y.tolist() == [2, 0]


def test_output_size_is_the_top_class_plus_one_or_the_declared_count():
    assert task().output_size(torch.tensor([0, 3]), torch.tensor([5]), None) == 6
    assert task().output_size(torch.tensor([0, 3]), torch.tensor([5]), 10) == 10


def test_outputs_must_be_one_row_of_logits_per_sample():
    task().check_outputs(torch.zeros(2, 3), torch.tensor([0, 1]), "model output")
    with pytest.raises(UserError, match=r"model output: output of shape \(2, 3, 1\)"):
        task().check_outputs(torch.zeros(2, 3, 1), torch.tensor([0, 1]), "model output")


def test_metrics_match_allows_a_flipped_near_tie_per_thousand_samples():
    t = task()
    assert t.metrics_match({"accuracy": 0.5}, {"accuracy": 0.75}, 4)  # one of 4 samples
    assert not t.metrics_match({"accuracy": 0.5}, {"accuracy": 1.0}, 4)
    # accuracies as the meter computes them (hits / samples): one flip allowed per thousand samples
    for samples, hits in [(1000, 900), (2000, 1800), (60000, 59000)]:
        allowed = max(1, samples // 1000)
        assert t.metrics_match(
            {"accuracy": hits / samples}, {"accuracy": (hits + allowed) / samples}, samples
        )
        beyond = {"accuracy": (hits + allowed + 1) / samples}
        assert not t.metrics_match({"accuracy": hits / samples}, beyond, samples)


def test_describes_itself_as_a_percentage_accuracy_task():
    t = task_by_name("classification")
    assert (t.primary, t.short, t.percent, t.higher_is_better) == ("accuracy", "acc", True, True)
    assert t.describe() == {
        "name": "classification",
        "primary": "accuracy",
        "higher_is_better": True,
        "drop_scale": 100.0,  # drops in points of accuracy
        "relative_drop": False,
        "percent": True,
    }
    assert t.drop(0.9, 0.885) == pytest.approx(1.5)
    assert t.at_baseline(0.19, 0.19) and not t.at_baseline(0.2, 0.19)
