"""`data.name: "package.module:callable"`: datasets streamed alike with workers, bad ones refused."""

from __future__ import annotations

import pytest
import torch

from paiexport.data import DataConfig, load_dataset
from paiexport.errors import UserError


def cfg(**kw) -> DataConfig:
    return DataConfig.model_validate({"val_fraction": 0.25, **kw})


FACTORY = """
import torch
from torch.utils.data import TensorDataset

def sets():
    x = torch.arange(60.0).view(20, 1, 3)
    return TensorDataset(x, torch.arange(20) % 4), TensorDataset(x[:8], torch.arange(8) % 4)

def bad_labels():
    x = torch.zeros(6, 2)
    zeros = torch.zeros(6, dtype=torch.long)
    return TensorDataset(x, torch.tensor([0, 1, 2, 0, 1, 5])), TensorDataset(x, zeros)

def not_a_pair():
    return 3
"""


def test_factory_datasets_stream_in_the_same_order_with_workers(tmp_path):
    (tmp_path / "mydata.py").write_text(FACTORY)
    data = load_dataset(cfg(name="mydata:sets"), seed=0, folders=[tmp_path])
    assert (
        data.input_shape == (1, 3) and data.num_classes == 4 and (len(data.train), len(data.val)) == (15, 5)
    )
    assert data.test.x[2].tolist() == [[6.0, 7.0, 8.0]] and data.train.head(2).shape == (2, 1, 3)
    two = load_dataset(cfg(name="mydata:sets", num_workers=2), seed=0, folders=[tmp_path])
    order = [y.tolist() for _, y in data.train.batches(4, torch.Generator().manual_seed(1))]
    assert order == [y.tolist() for _, y in two.train.batches(4, torch.Generator().manual_seed(1))]
    with pytest.raises(UserError, match=r"data: label 5 outside \[0, 3\)"):
        load_dataset(cfg(name="mydata:bad_labels", num_classes=3), seed=0, folders=[tmp_path])
    with pytest.raises(UserError, match=r"data.name: mydata:not_a_pair must return \(train, test\)"):
        load_dataset(cfg(name="mydata:not_a_pair"), seed=0, folders=[tmp_path])
