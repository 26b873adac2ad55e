"""The bundled datasets: procedural MNIST-1D split by seed, scikit-learn digits as images."""

import torch

from paiexport.data import DatasetName, load_data


def test_mnist1d_is_procedural_and_split_by_seed():
    a = load_data(DatasetName.mnist1d, seed=0, val_fraction=0.1)
    b = load_data(DatasetName.mnist1d, seed=0, val_fraction=0.1)
    c = load_data(DatasetName.mnist1d, seed=1, val_fraction=0.1)
    assert a.input_shape == (1, 40) and a.num_classes == 10
    assert (len(a.train), len(a.val), len(a.test)) == (3600, 400, 1000)
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.x, c.test.x)
    assert not torch.equal(a.val.y, c.val.y)  # the validation split follows the seed


def test_digits_images():
    d = load_data(DatasetName.digits, seed=0, val_fraction=0.1)
    assert d.input_shape == (1, 8, 8) and d.num_classes == 10
    assert len(d.train) + len(d.val) + len(d.test) == 1797
    assert float(d.train.x.min()) >= 0.0 and float(d.train.x.max()) <= 1.0
