"""Language model: the shift (position t predicts token t + 1), perplexity over the split, token
accuracy, the add-one unigram baseline, a relative drop."""

from __future__ import annotations

import math

import pytest
import torch

from paiexport.errors import UserError
from paiexport.tasks import make_task, task_by_name
from paiexport.tasks.language_model import LanguageModel, LanguageModelConfig

TOKENS = torch.tensor([[0, 1, 2]])  # vocabulary of 3
# position 0: uniform -> p(token 1) = 1/3; position 1: probs [1/4, 1/4, 1/2] -> p(token 2) = 1/2;
# position 2 predicts nothing (its logits would cost ~100 nats against any shift-less reading)
LOGITS = torch.tensor([[[0.0, 0.0, 0.0], [0.0, 0.0, math.log(2.0)], [100.0, 0.0, 0.0]]])


def task() -> LanguageModel:
    return make_task(LanguageModelConfig())


def measured(outputs: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    t = task()
    meter = t.meter()
    meter.add(outputs, t.targets(y, "data.test"))
    return meter.result()


def test_loss_is_next_token_cross_entropy_after_the_shift():
    # mean of -ln(1/3) and -ln(1/2); unshifted it would be (ln 3 + ln 4 + 100) / 3
    assert float(task().loss(LOGITS, TOKENS)) == pytest.approx((math.log(3) + math.log(2)) / 2)


def test_perplexity_and_token_accuracy_by_hand():
    # perplexity exp((ln 3 + ln 2) / 2) = sqrt(6); position 0's argmax is 0 (not 1), position 1's is 2
    found = measured(LOGITS, TOKENS)
    assert found == pytest.approx({"perplexity": math.sqrt(6), "token_accuracy": 0.5})


def test_perplexity_is_over_every_token_of_the_split_not_a_mean_over_batches():
    # batch 1 as above (nll ln 3 + ln 2); batch 2: two sequences of uniform logits (4 x ln 3)
    t = task()
    meter = t.meter()
    meter.add(LOGITS, t.targets(TOKENS, "data.test"))
    meter.add(torch.zeros(2, 3, 3), t.targets(torch.tensor([[0, 1, 2], [2, 2, 0]]), "data.test"))
    expected = math.exp((5 * math.log(3) + math.log(2)) / 6)
    assert meter.result()["perplexity"] == pytest.approx(expected)


def test_an_empty_split_has_the_worst_perplexity_not_a_perfect_one():
    assert task().meter().result() == {"perplexity": math.inf, "token_accuracy": 0.0}


def test_baseline_is_the_add_one_unigram_of_the_training_tokens():
    # training counts [3, 1, 0] of 4 tokens, add-one over V = 3: p = [4/7, 2/7, 1/7]
    # test next tokens 1 and 2 (the unseen one costs ln 7, not infinity):
    # perplexity = exp((ln 3.5 + ln 7) / 2) = sqrt(24.5)
    train = torch.tensor([[0, 0, 1, 0]])
    assert task().baseline(train, TOKENS, 3) == pytest.approx(math.sqrt(24.5))


def test_at_baseline_and_the_drop_are_for_a_lower_is_better_metric():
    t = task()
    assert t.at_baseline(4.95, 4.9) and t.at_baseline(4.9, 4.9) and not t.at_baseline(4.8, 4.9)
    # relative: 10 -> 10.5 is 5% worse, 10 -> 9 is 10% better
    assert t.drop(10.0, 10.5) == pytest.approx(0.05) and t.drop(10.0, 9.0) == pytest.approx(-0.1)
    assert t.default_max_drop == 0.05


@pytest.mark.parametrize(
    ("y", "says"),
    [
        (TOKENS.float(), "float32(1, 3); token ids are integers"),
        (torch.tensor([0, 1, 2]), "shape (3,)"),
        (torch.tensor([[4], [2]]), "shape (2, 1); one sequence of at least 2 tokens"),
        (torch.tensor([[0, -3]]), "target -3 outside [0, inf)"),
        (torch.zeros(1, 3, dtype=torch.bool), "bool"),
    ],
)
def test_targets_that_are_not_token_sequences_are_refused_naming_task_and_where(y, says):
    with pytest.raises(UserError) as err:
        task().targets(y, "data.train")
    assert str(err.value).startswith("task.name language_model: data.train: ") and says in str(err.value)


def test_output_size_is_the_vocabulary():
    assert task().output_size(torch.tensor([[0, 4]]), torch.tensor([[7, 1]]), None) == 8
    assert task().output_size(TOKENS, TOKENS, 50) == 50
    with pytest.raises(UserError, match=r"task.name language_model: data.num_classes: 2 declared.*3 token"):
        task().output_size(TOKENS, TOKENS, 2)


def test_outputs_must_be_logits_per_token():
    task().check_outputs(LOGITS, TOKENS, "model output")
    with pytest.raises(UserError, match=r"model output: output of shape \(1, 3\)"):
        task().check_outputs(torch.zeros(1, 3), TOKENS, "model output")
    with pytest.raises(UserError, match=r"output of shape \(1, 2, 3\)"):
        task().check_outputs(LOGITS[:, :2], TOKENS, "model output")


def test_describes_itself_as_ppl_with_defaults_by_name():
    t = task_by_name("language_model")
    assert (t.primary, t.short, t.percent, t.higher_is_better) == ("perplexity", "ppl", False, False)
