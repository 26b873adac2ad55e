"""Checks before training: a bundled model fits in memory, a model takes a sample batch."""

import pytest
import torch

from paiexport.errors import UserError
from paiexport.models import ModelName, build_model, check_model_size, check_sample_batch
from paiexport.tasks import make_task
from paiexport.tasks.classification import ClassificationConfig


def test_a_model_too_big_for_memory_is_refused_before_it_is_allocated():
    with pytest.raises(UserError, match=r"^model\.args: model cnn1d needs about \d+\.\d GiB to train"):
        check_model_size(ModelName.cnn1d, {"channels": [65536] * 3}, (1, 40), 10, 64)
    check_model_size(ModelName.cnn1d, {}, (1, 40), 10, 128)  # the default model fits


def test_sample_batch_check_names_model_args_and_leaves_the_model_unchanged():
    torch.manual_seed(0)
    model = build_model(ModelName.cnn1d, {"channels": [4, 4], "hidden": 8}, (1, 40), 4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    check_sample_batch(model, torch.randn(2, 1, 40))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # BN stats untouched
    with pytest.raises(UserError, match=r"^model\.args: the model fails on a sample batch: .*channels"):
        check_sample_batch(model, torch.randn(2, 3, 40))  # 3 input channels, the conv expects 1


class DictOutput(torch.nn.Module):
    """Returns a dict, like a Hugging Face ModelOutput."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(40, width)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"logits": self.fc(x.flatten(1)), "hidden": x}


def test_a_dict_output_is_checked_on_the_value_the_task_reads():
    from paiexport.tasks import make_task
    from paiexport.tasks.base import TaskConfig

    check_sample_batch(DictOutput(4), torch.randn(2, 1, 40), 4)  # the first value: logits
    with pytest.raises(UserError, match=r"^model\.name: output \(2, 3\) on a sample batch of \(2, 1, 40\)"):
        check_sample_batch(DictOutput(3), torch.randn(2, 1, 40), 4)
    task = make_task(TaskConfig(name="classification", output="hidden"))
    with pytest.raises(UserError, match=r"output \(2, 1, 40\) on a sample batch"):
        check_sample_batch(DictOutput(4), torch.randn(2, 1, 40), 4, task)


class Pooled(torch.nn.Module):
    """(features, logits) of token ids under a mask."""

    def __init__(self) -> None:
        super().__init__()
        self.embed, self.head = torch.nn.Embedding(9, 4), torch.nn.Linear(4, 3)

    def forward(self, input_ids, attention_mask):
        pooled = (self.embed(input_ids) * attention_mask.unsqueeze(-1)).mean(1)
        return pooled, self.head(pooled)


def test_a_sample_batch_of_several_inputs_checks_the_output_the_task_reads():
    sample = {
        "input_ids": torch.ones(2, 5, dtype=torch.int64),
        "attention_mask": torch.ones(2, 5, dtype=torch.int64),
    }
    check_sample_batch(Pooled(), sample, 3, make_task(ClassificationConfig(output="1")))
    with pytest.raises(UserError) as refused:  # the first output: 4 features, not 3 logits
        check_sample_batch(Pooled(), sample, 3, make_task())
    expected = (
        "model.name: output (2, 4) on a sample batch of {'input_ids': (2, 5), 'attention_mask': (2, 5)}"
    )
    assert str(refused.value) == f"{expected}, expected (2, 3)"
