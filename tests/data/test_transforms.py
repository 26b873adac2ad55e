"""Normalization and augmentation, by hand and through the loader."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from userdata import write_npz

from paiexport.data import DataConfig, load_dataset
from paiexport.data.transforms import channel_stats, horizontal_flip, normalize, random_crop


def cfg(**kw) -> DataConfig:
    return DataConfig.model_validate({"val_fraction": 0.25, **kw})


def test_normalize_auto_and_given(tmp_path):
    path = str(write_npz(tmp_path / "d.npz", shape=(2, 3, 3)))
    data = load_dataset(cfg(name="npz", path=path, normalize="auto"), seed=0)
    x = data.train.x.double()
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.zeros(2, dtype=torch.float64), atol=1e-5)
    assert torch.allclose(x.std(dim=(0, 2, 3), unbiased=False), torch.ones(2, dtype=torch.float64), atol=1e-4)
    given = load_dataset(
        cfg(name="npz", path=path, normalize={"mean": [0.5, 0.5], "std": [0.25, 0.5]}), seed=0
    )
    raw = load_dataset(cfg(name="npz", path=path), seed=0)
    assert torch.allclose(given.test.x[:, 1], (raw.test.x[:, 1] - 0.5) / 0.5)
    assert given.mean == (0.5, 0.5) and raw.mean is None


def test_transforms_by_hand():
    mean, std = channel_stats([torch.tensor([[[1.0, 3.0]], [[5.0, 7.0]]])])  # one channel: 1, 3, 5, 7
    assert mean == (4.0,) and std[0] == pytest.approx(np.sqrt(5.0))
    assert normalize(torch.tensor([[[4.0, 6.0]]]), (4.0,), (2.0,)).tolist() == [[[0.0, 1.0]]]
    x = torch.arange(4.0).view(1, 1, 2, 2)
    crops = {tuple(random_crop(x, 1, torch.Generator().manual_seed(s)).flatten().tolist()) for s in range(40)}
    assert (0.0, 1.0, 2.0, 3.0) in crops and (0.0, 0.0, 0.0, 0.0) in crops and len(crops) == 9
    flips = {
        tuple(horizontal_flip(x, torch.Generator().manual_seed(s)).flatten().tolist()) for s in range(20)
    }
    assert flips == {(0.0, 1.0, 2.0, 3.0), (1.0, 0.0, 3.0, 2.0)}
