"""Multi-label: BCE on 0/1 rows, micro/macro F1 at the threshold, mAP, the prevalence baseline."""

from __future__ import annotations

import math

import pytest
import torch
from sklearn.metrics import average_precision_score, f1_score

from paiexport.errors import UserError
from paiexport.tasks import make_task
from paiexport.tasks.multilabel import Multilabel, MultilabelConfig, mean_average_precision

# 4 samples, 3 labels. At threshold 0.5 a label is predicted iff its logit >= 0.
Y = torch.tensor([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 0]])
LOGITS = torch.tensor([[2.0, -1.0, 0.5], [-2.0, 1.0, -0.5], [1.0, -3.0, 3.0], [-1.0, 2.0, -2.0]])


def task(threshold: float = 0.5) -> Multilabel:
    return make_task(MultilabelConfig(threshold=threshold))


def measured(t: Multilabel, outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    meter = t.meter()
    meter.add(outputs, t.targets(targets, "data.test"))
    return meter.result()


def test_f1_and_map_by_hand_and_as_scikit_learn():
    # predicted: [[1,0,1],[0,1,0],[1,0,1],[0,1,0]]
    # label 0: TP 2 FP 0 FN 0 -> F1 1; label 1: TP 1 FP 1 FN 1 -> 2/4; label 2: TP 1 FP 1 -> 2/3
    # micro: TP 4, FP 2, FN 1 -> 8 / 11; macro: (1 + 1/2 + 2/3) / 3 = 13/18
    # AP, scores ranked high to low: label 0 hits at ranks 1, 2 -> 1; label 1 (ranks 2, 4) ->
    # (1/2 + 2/4) / 2 = 1/2; label 2 (rank 2) -> 1/2; map = 2/3
    found = measured(task(), LOGITS, Y)
    assert found == pytest.approx({"micro_f1": 8 / 11, "macro_f1": 13 / 18, "map": 2 / 3})
    predicted = (LOGITS >= 0).numpy()
    assert found["micro_f1"] == pytest.approx(f1_score(Y.numpy(), predicted, average="micro"))
    assert found["macro_f1"] == pytest.approx(f1_score(Y.numpy(), predicted, average="macro"))
    aps = [average_precision_score(Y[:, j].numpy(), LOGITS[:, j].numpy()) for j in range(3)]
    assert found["map"] == pytest.approx(sum(aps) / 3)


def test_the_threshold_moves_the_decisions():
    # threshold 0.8: predicted iff logit >= ln 4 = 1.386: [[1,0,0],[0,0,0],[0,0,1],[0,1,0]]
    # TP 1 (row 0, label 0), FP 2, FN 4 -> micro F1 = 2 / (2 + 2 + 4) = 1/4
    assert measured(task(0.8), LOGITS, Y)["micro_f1"] == pytest.approx(0.25)


def test_a_label_nobody_has_counts_zero_in_macro_f1_and_nothing_in_map():
    # a fourth label, never a target, never predicted: F1 0 (zero_division=0), left out of mAP
    y = torch.cat([Y, torch.zeros(4, 1, dtype=Y.dtype)], dim=1)
    logits = torch.cat([LOGITS, torch.full((4, 1), -5.0)], dim=1)
    found = measured(task(), logits, y)
    assert found["macro_f1"] == pytest.approx((1 + 1 / 2 + 2 / 3) / 4)
    assert found["macro_f1"] == pytest.approx(f1_score(y, logits >= 0, average="macro", zero_division=0))
    assert found["micro_f1"] == pytest.approx(8 / 11) and found["map"] == pytest.approx(2 / 3)


def test_tied_scores_form_one_step_of_average_precision():
    # scores [1, 1, 0], targets [1, 0, 1]: threshold 1 -> precision 1/2 at recall 1/2;
    # threshold 0 -> precision 2/3 at recall 1: AP = 1/2 * 1/2 + 1/2 * 2/3 = 7/12
    scores, y = torch.tensor([[1.0], [1.0], [0.0]]), torch.tensor([[1], [0], [1]])
    assert mean_average_precision(scores, y) == pytest.approx(7 / 12)
    assert mean_average_precision(scores, y) == pytest.approx(average_precision_score([1, 0, 1], [1, 1, 0]))


def test_the_split_is_measured_whole_not_averaged_over_batches():
    t = task()
    meter = t.meter()
    meter.add(LOGITS[:1], t.targets(Y[:1], "data.test"))
    meter.add(LOGITS[1:], t.targets(Y[1:], "data.test"))
    assert meter.result() == pytest.approx(measured(t, LOGITS, Y))


def test_loss_is_binary_cross_entropy_with_logits():
    # logit 0 costs ln 2 whatever the label; logit ln 3 (p = 3/4) costs ln(4/3) for a 1, ln 4 for a 0
    logits = torch.tensor([[0.0, math.log(3.0)], [0.0, math.log(3.0)]])
    y = task().targets(torch.tensor([[1, 1], [0, 0]]), "data.train")
    expected = (2 * math.log(2.0) + math.log(4 / 3) + math.log(4.0)) / 4
    assert float(task().loss(logits, y)) == pytest.approx(expected)


def test_baseline_predicts_the_training_prevalence():
    # prevalence [3/4, 1/4, 1/4]: only label 0 is predicted, for every test sample
    # on Y: label 0 TP 2 FP 2; labels 1, 2 FN 2 + 1 -> micro F1 = 4 / (4 + 2 + 3) = 4/9
    train = torch.tensor([[1, 0, 1], [1, 0, 0], [1, 1, 0], [0, 0, 0]])
    assert task().baseline(train, Y, 3) == pytest.approx(4 / 9)
    # prevalence 1/2, exactly the threshold, counts as positive: on [1, 0, 1, 0] TP 2 FP 2 -> 4/6
    assert task().baseline(torch.tensor([[1], [0]]), Y[:, :1], 1) == pytest.approx(4 / 6)


@pytest.mark.parametrize("dtype", [torch.bool, torch.int64, torch.uint8, torch.float64])
def test_zero_one_targets_of_any_real_dtype_become_floats(dtype):
    y = task().targets(Y.to(dtype), "data.train")
    assert y.dtype == torch.float32 and torch.equal(y, Y.float())


@pytest.mark.parametrize(
    ("y", "says"),
    [
        (torch.tensor([[0, 2]]), "holding 2"),
        (torch.tensor([[0.0, 0.5]]), "holding 0.5"),
        (torch.tensor([[1.0, float("nan")]]), "holding nan"),
        (torch.tensor([[-1, 1]]), "holding -1"),
        (torch.tensor([1, 0, 1]), "shape (3,)"),
        (torch.tensor([[1 + 0j, 0j]]), "complex64"),
    ],
)
def test_targets_that_are_not_0_1_rows_are_refused_naming_task_and_where(y, says):
    with pytest.raises(UserError) as err:
        task().targets(y, "data.train")
    message = str(err.value)
    assert message.startswith("task.name multilabel: data.train: ") and says in message
    assert "\n" not in message


def test_output_size_is_the_label_count_and_a_wrong_declaration_is_refused():
    assert task().output_size(Y, Y[:2], None) == 3
    assert task().output_size(Y, Y[:2], 3) == 3
    with pytest.raises(UserError, match=r"task.name multilabel: data.num_classes: 4 declared.*3 labels"):
        task().output_size(Y, Y, 4)
    with pytest.raises(UserError, match=r"test targets: \(2,\) labels per sample, training \(3,\)"):
        task().output_size(Y, Y[:, :2], None)


def test_outputs_must_have_the_targets_shape():
    task().check_outputs(LOGITS, Y, "model output")
    with pytest.raises(UserError, match=r"model output: output of shape \(4, 2\)"):
        task().check_outputs(LOGITS[:, :2], Y, "model output")


def test_metrics_match_allows_a_decision_per_thousand_samples_to_flip():
    t = task()
    # 1000 samples: 1 flip moves micro F1 by at most 2 / 1000
    assert t.metrics_match({"micro_f1": 0.800}, {"micro_f1": 0.802}, 1000)
    assert not t.metrics_match({"micro_f1": 0.800}, {"micro_f1": 0.803}, 1000)


def test_describes_itself_as_a_percentage_f1_task():
    t = task()
    assert (t.primary, t.short, t.percent, t.higher_is_better) == ("micro_f1", "f1", True, True)
    assert t.at_baseline(4 / 9, 4 / 9) and not t.at_baseline(0.5, 4 / 9)


@pytest.mark.parametrize("threshold", [0.0, 1.0, -0.1])
def test_threshold_outside_zero_one_is_refused(threshold):
    with pytest.raises(ValueError, match="threshold"):
        MultilabelConfig(threshold=threshold)
