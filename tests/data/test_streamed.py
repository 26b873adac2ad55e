"""Splits of datasets read per sample: a seeded train/val split by index, normalization as read."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import Dataset, TensorDataset

from paiexport.data import load_dataset
from paiexport.data.config import DataConfig
from paiexport.data.streamed import Normalized, splits, with_transforms
from paiexport.errors import UserError
from paiexport.tasks import task_by_name


def cfg(**kw) -> DataConfig:
    return DataConfig.model_validate({"name": "synthetic", "val_fraction": 0.25, **kw})


def tensors(n: int) -> TensorDataset:
    return TensorDataset(torch.arange(n * 2.0).view(n, 1, 2), torch.arange(n) % 3)


def indices(split) -> list[int]:
    return list(split.dataset.indices)


def test_a_seeded_split_by_index():
    data = splits(tensors(8), tensors(4), cfg(), seed=0, num_classes=3)
    train, val = indices(data.train), indices(data.val)
    assert (len(train), len(val), len(data.test)) == (6, 2, 4)  # round(0.25 * 8) = 2 for validation
    assert sorted(train + val) == list(range(8))
    again = splits(tensors(8), tensors(4), cfg(), seed=0, num_classes=3)
    assert (indices(again.train), indices(again.val)) == (train, val)
    other = [indices(splits(tensors(8), tensors(4), cfg(), seed=s, num_classes=3).val) for s in range(1, 6)]
    assert any(v != val for v in other)  # the split follows the seed
    assert (data.input_shape, data.num_classes) == ((1, 2), 3)


def test_a_split_that_leaves_no_training_sample_is_refused():
    with pytest.raises(UserError, match=r"^data.val_fraction: 0.9 leaves no training samples$"):
        splits(tensors(4), tensors(2), cfg(val_fraction=0.9), seed=0, num_classes=3)


class Broken(Dataset):
    def __len__(self) -> int:
        return 3

    def __getitem__(self, index: int):
        raise IndexError("gone")


def test_a_first_sample_that_cannot_be_read_is_one_line():
    with pytest.raises(UserError, match=r"^data.name: reading the first training sample raised IndexError$"):
        splits(Broken(), tensors(2), cfg(), seed=0, num_classes=3)


def test_normalized_samples_and_transforms_on_the_training_split_only():
    base = TensorDataset(torch.tensor([[[1.0, 3.0]], [[5.0, 7.0]]]), torch.tensor([0, 1]))
    x, y = Normalized(base, (1.0,), (2.0,))[1]
    assert x.tolist() == [[2.0, 3.0]] and int(y) == 1
    data = splits(tensors(8), tensors(4), cfg(), seed=0, num_classes=3)

    def flip(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return batch.flip(-1)

    train, val, test = with_transforms(data, ((0.0,), (1.0,)), flip)
    assert train.augment is flip and val.augment is None and test.augment is None
    assert isinstance(train.dataset, Normalized) and isinstance(test.dataset, Normalized)
    plain, _, _ = with_transforms(data, None, None)
    assert plain.dataset is data.train.dataset


TASK_DATA = """
import torch
from torch.utils.data import Dataset


class Pairs(Dataset):
    def __init__(self, n, target, odd=None):
        self.n, self.target, self.odd = n, target, odd or {}

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        x = torch.full((3,), float(i))
        return x, self.odd.get(i, self.target(i))


def floats():  # a class index plus 0.37: not a class
    return Pairs(20, lambda i: i % 2 + 0.37), Pairs(6, lambda i: i % 2 + 0.37)


def integral_floats():  # 1.0 is a float too: nothing is cast
    return Pairs(20, lambda i: float(i % 2)), Pairs(6, lambda i: float(i % 2))


def vectors():  # two float targets per sample
    return Pairs(20, lambda i: torch.tensor([i, -i], dtype=torch.float32)), Pairs(6, lambda i: torch.zeros(2))


def ragged_vectors():  # sample 7 has three targets
    wide = {7: torch.zeros(3)}
    return Pairs(20, lambda i: torch.zeros(2), wide), Pairs(6, lambda i: torch.zeros(2))
"""


@pytest.fixture
def task_data(tmp_path):
    (tmp_path / "taskdata.py").write_text(TASK_DATA)
    return tmp_path


@pytest.mark.parametrize("factory", ["floats", "integral_floats"])
def test_float_targets_for_classification_exit_2_nothing_is_cast(task_data, factory):
    with pytest.raises(UserError) as caught:
        load_dataset(DataConfig(name=f"taskdata:{factory}"), seed=0, folders=[task_data])
    text = str(caught.value)
    assert (
        text.startswith(f"data.name: taskdata:{factory}: train sample ")
        and "task.name classification" in text
    )


def test_a_tasks_targets_are_read_once_checked_and_kept(task_data):
    data = load_dataset(
        DataConfig(name="taskdata:vectors", val_fraction=0.25),
        seed=0,
        folders=[task_data],
        task=task_by_name("regression"),
    )
    assert data.task.name == "regression" and data.num_classes == 2
    x, y = next(iter(data.train.batches(64)))
    assert y.dtype == torch.float32 and tuple(y.shape) == (15, 2)
    assert torch.equal(y[:, 0], x[:, 0]) and torch.equal(y[:, 1], -x[:, 0])  # each sample's own target


def test_a_target_unlike_the_first_is_named_by_its_sample(task_data):
    with pytest.raises(UserError) as caught:
        load_dataset(
            DataConfig(name="taskdata:ragged_vectors"),
            seed=0,
            folders=[task_data],
            task=task_by_name("regression"),
        )
    assert str(caught.value) == (
        "data.name: taskdata:ragged_vectors: train sample 7 has target float32(3,), "
        "the first sample float32(2,)"
    )


def tokens(n: int, as_dict: bool = True, length: int = 4) -> list:
    """A factory's samples of two inputs: token ids and an attention mask (ints), a class."""
    g = torch.Generator().manual_seed(n)
    ids, mask = torch.randint(0, 9, (n, length), generator=g), torch.ones(n, length, dtype=torch.int64)
    x = [{"input_ids": ids[i], "attention_mask": mask[i]} if as_dict else (ids[i], mask[i]) for i in range(n)]
    return [(x[i], i % 2) for i in range(n)]


@pytest.mark.parametrize("as_dict", [True, False])
def test_several_inputs_are_batched_together_and_stay_int64(as_dict):
    train, test = tokens(8, as_dict), tokens(4, as_dict)
    data = splits(train, test, cfg(), seed=0)
    x, y = next(data.train.batches(3, torch.Generator().manual_seed(0)))
    parts = list(x.values()) if as_dict else list(x)
    assert isinstance(x, dict if as_dict else tuple) and len(parts) == 2
    assert all(p.dtype == torch.int64 and p.shape == (3, 4) for p in parts) and len(y) == 3
    whole = data.test.x
    first = whole["input_ids"] if as_dict else whole[0]
    assert torch.equal(first, torch.stack([(s[0]["input_ids"] if as_dict else s[0][0]) for s in test]))
    assert data.input_shape == (4,)  # the first input's
    example = data.example(2)  # the first test samples (valid ids), not zeros
    assert torch.equal(example["input_ids"] if as_dict else example[0], first[:2])


def test_a_sample_whose_inputs_differ_from_the_first_is_refused():
    train = tokens(8)
    train[5] = ({"input_ids": torch.zeros(4, dtype=torch.int64)}, 1)
    with pytest.raises(UserError) as caught:
        splits(train, tokens(4), cfg(), seed=0)
    assert str(caught.value) == (
        "data.name: synthetic: train sample 5 has shape {'input_ids': (4,)}, "
        "the first sample {'input_ids': (4,), 'attention_mask': (4,)}"
    )
    keyed = [({0: torch.zeros(4)}, 0)] * 4
    with pytest.raises(
        UserError, match=r"train sample 0: x is a dict, not an array of numbers \(nor a tuple"
    ):
        splits(keyed, keyed, cfg(), seed=0)
