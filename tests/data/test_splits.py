"""Train/val/test splits: batches that cover a split once."""

import torch

from paiexport.data import DatasetName, load_data


def test_batches_cover_the_split_once():
    d = load_data(DatasetName.synthetic, seed=0, val_fraction=0.2)
    seen = torch.cat([y for _, y in d.train.batches(50, torch.Generator().manual_seed(0))])
    assert len(seen) == len(d.train) and torch.equal(seen.sort().values, d.train.y.sort().values)
