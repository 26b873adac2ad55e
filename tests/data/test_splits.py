"""Train/val/test splits: batches that cover a split once."""

import torch

from paiexport.data import DatasetName, Split, load_data


def test_batches_cover_the_split_once():
    d = load_data(DatasetName.synthetic, seed=0, val_fraction=0.2)
    seen = torch.cat([y for _, y in d.train.batches(50, torch.Generator().manual_seed(0))])
    assert len(seen) == len(d.train) and torch.equal(seen.sort().values, d.train.y.sort().values)


def test_a_dict_of_inputs_is_indexed_alike_in_every_batch():
    ids = torch.arange(10).view(5, 2)
    x = {"input_ids": ids, "scale": ids.float() * 10}
    split = Split(x, torch.arange(5))
    for batch, y in split.batches(2, torch.Generator().manual_seed(0)):
        assert torch.equal(batch["input_ids"], ids[y]) and torch.equal(batch["scale"], ids[y].float() * 10)
    assert split.head(3)["input_ids"].tolist() == [[0, 1], [2, 3], [4, 5]]
    ordered = [b["input_ids"] for b, _ in split.batches(2)]
    assert torch.equal(torch.cat(ordered), ids)
