"""Splits of datasets read per sample: a seeded train/val split by index, normalization as read."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import Dataset, TensorDataset

from paiexport.data.config import DataConfig
from paiexport.data.streamed import Normalized, splits, with_transforms
from paiexport.errors import UserError


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
