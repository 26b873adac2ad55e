"""Segmentation: per-pixel cross-entropy, mIoU and pixel accuracy over the split, ignore_index
pixels counted nowhere, the majority-class baseline."""

from __future__ import annotations

import math

import pytest
import torch
from sklearn.metrics import accuracy_score, jaccard_score

from paiexport.errors import UserError
from paiexport.tasks import make_task
from paiexport.tasks.segmentation import Segmentation, SegmentationConfig

IGNORE = -100
# one 2 x 3 image, 3 classes; the pixel at (1, 1) is ignored
Y = torch.tensor([[[0, 1, 1], [2, IGNORE, 0]]])
PREDICTED = torch.tensor([[[0, 1, 0], [2, 2, 1]]])


def logits_for(predicted: torch.Tensor, classes: int) -> torch.Tensor:
    """(N, C, H, W) logits whose argmax is `predicted`."""
    return torch.nn.functional.one_hot(predicted, classes).permute(0, 3, 1, 2).float() * 4.0


def task(ignore_index: int = IGNORE) -> Segmentation:
    return make_task(SegmentationConfig(ignore_index=ignore_index))


def measured(t: Segmentation, logits: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    meter = t.meter()
    meter.add(logits, t.targets(y, "data.test"))
    return meter.result()


def test_miou_and_pixel_accuracy_by_hand_without_the_ignored_pixel():
    # counted (target, predicted): (0,0) (1,1) (1,0) (2,2) (0,1); the ignored pixel's 2 is not an FP
    # IoU 0: TP 1 / (1 + FP 1 + FN 1) = 1/3; IoU 1: 1/3; IoU 2: 1 / 1 = 1 -> mIoU 5/9
    # pixel accuracy: 3 right of 5 counted
    found = measured(task(), logits_for(PREDICTED, 3), Y)
    assert found == pytest.approx({"miou": 5 / 9, "pixel_accuracy": 3 / 5})
    kept = Y != IGNORE
    assert found["miou"] == pytest.approx(jaccard_score(Y[kept], PREDICTED[kept], average="macro"))
    assert found["pixel_accuracy"] == pytest.approx(accuracy_score(Y[kept], PREDICTED[kept]))


def test_a_class_in_neither_targets_nor_predictions_is_left_out_of_the_mean():
    # a fourth class of logits, never a target, never the argmax: still 5/9, not (5/3) / 4
    assert measured(task(), logits_for(PREDICTED, 4), Y)["miou"] == pytest.approx(5 / 9)


def test_the_confusion_matrix_is_summed_over_the_split():
    # the same image twice in two batches: counts double, the metrics stay the same
    t = task()
    meter = t.meter()
    for _ in range(2):
        meter.add(logits_for(PREDICTED, 3), t.targets(Y, "data.test"))
    assert meter.result() == pytest.approx({"miou": 5 / 9, "pixel_accuracy": 3 / 5})


def test_loss_averages_cross_entropy_over_the_counted_pixels_only():
    # logits 4 on the predicted class, 0 elsewhere: a right pixel costs ln(e^4 + 2) - 4,
    # a wrong one ln(e^4 + 2); 3 right and 2 wrong of the 5 counted pixels
    right, wrong = math.log(math.exp(4) + 2) - 4, math.log(math.exp(4) + 2)
    loss = task().loss(logits_for(PREDICTED, 3), Y)
    assert float(loss) == pytest.approx((3 * right + 2 * wrong) / 5)


def test_a_batch_of_ignored_pixels_costs_zero_not_nan():
    logits = logits_for(PREDICTED, 3).requires_grad_()
    loss = task().loss(logits, torch.full_like(Y, IGNORE))
    loss.backward()
    assert float(loss) == 0.0 and torch.equal(logits.grad, torch.zeros_like(logits))


def test_baseline_is_the_majority_training_class_everywhere():
    # training pixels: 0 twice, 1 once; the three ignored pixels are the commonest value but no class
    # class 0 everywhere on Y's counted targets (0,1,1,2,0): IoU 0 = 2/5, IoU 1 = IoU 2 = 0 -> 2/15
    train = torch.tensor([[[0, 0, 1], [IGNORE, IGNORE, IGNORE]]])
    assert task().baseline(train, Y, 3) == pytest.approx(2 / 15)


def test_another_ignore_index_is_allowed_and_not_a_class():
    y = torch.where(Y == IGNORE, 255, Y)
    t = task(255)
    assert torch.equal(t.targets(y, "data.train"), y)
    assert t.output_size(y, y, None) == 3
    assert measured(t, logits_for(PREDICTED, 3), y)["miou"] == pytest.approx(5 / 9)


@pytest.mark.parametrize(
    ("y", "says"),
    [
        (Y.float(), "float32(1, 2, 3); class maps are integers"),
        (torch.tensor([[[0, -1]]]), "target -1 outside [0, inf)"),
        (torch.tensor([0, 1, 2]), "shape (3,)"),
        (Y.bool(), "bool"),
    ],
)
def test_targets_that_are_not_class_maps_are_refused_naming_task_and_where(y, says):
    with pytest.raises(UserError) as err:
        task().targets(y, "data.train")
    assert str(err.value).startswith("task.name segmentation: data.train: ") and says in str(err.value)


def test_output_size_is_the_top_class_plus_one_or_the_declared_count():
    assert task().output_size(Y, Y, None) == 3
    assert task().output_size(Y, Y, 5) == 5
    with pytest.raises(UserError, match=r"task.name segmentation: data.num_classes: 2 declared.*3 classes"):
        task().output_size(Y, Y, 2)


def test_outputs_must_be_logits_per_pixel():
    task().check_outputs(logits_for(PREDICTED, 3), Y, "model output")
    with pytest.raises(UserError, match=r"model output: output of shape \(1, 3, 2, 2\)"):
        task().check_outputs(logits_for(PREDICTED, 3)[..., :2], Y, "model output")
    with pytest.raises(UserError, match=r"output of shape \(1, 6\)"):
        task().check_outputs(torch.zeros(1, 6), Y, "model output")


def test_metrics_match_allows_a_pixel_per_thousand_to_flip():
    a = {"miou": 0.5, "pixel_accuracy": 0.9}
    assert task().metrics_match(a, {"miou": 0.5009, "pixel_accuracy": 0.9009}, 10)
    assert not task().metrics_match(a, {"miou": 0.502, "pixel_accuracy": 0.9}, 10)
    assert not task().metrics_match(a, {"miou": 0.5, "pixel_accuracy": 0.902}, 10)


def test_describes_itself_as_a_percentage_miou_task():
    t = task()
    assert (t.primary, t.short, t.percent, t.higher_is_better) == ("miou", "miou", True, True)
