"""Every real dataset format read from tiny fabricated files; bad files exit 2 naming the file or field."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch
from userdata import write_cifar, write_idx, write_npz, write_png_folder

from paiexport.data import DataConfig, DatasetSplit, Split, load_dataset
from paiexport.data.transforms import channel_stats, horizontal_flip, normalize, random_crop
from paiexport.errors import UserError


def cfg(**kw) -> DataConfig:
    return DataConfig.model_validate({"val_fraction": 0.25, **kw})


@pytest.mark.parametrize("gz", [False, True])
def test_idx_raw_and_gz(tmp_path, gz):
    data = load_dataset(cfg(name="fashion_mnist", path=str(write_idx(tmp_path, gz, 48, 24, size=28))), seed=0)
    assert data.input_shape == (1, 28, 28) and data.num_classes == 10
    assert (len(data.train), len(data.val), len(data.test)) == (36, 12, 24)
    assert isinstance(data.train, Split) and float(data.test.x.max()) == pytest.approx(250 / 255)
    assert data.test.y[:3].tolist() == [0, 1, 2]


def test_idx_bad_magic_and_truncated(tmp_path):
    folder = write_idx(tmp_path, gz=False)
    labels = folder / "train-labels-idx1-ubyte"
    labels.write_bytes(labels.read_bytes()[:-5])
    with pytest.raises(UserError, match=r"train-labels-idx1-ubyte: truncated IDX"):
        load_dataset(cfg(name="mnist", path=str(folder)), seed=0)
    write_idx(tmp_path / "g", gz=True)
    gz_labels = tmp_path / "g" / "train-labels-idx1-ubyte.gz"
    gz_labels.write_bytes(gzip.compress(b"\0\0\x08\x03" + b"\0" * 12))
    with pytest.raises(UserError, match=r"train-labels-idx1-ubyte.gz: wrong magic number"):
        load_dataset(cfg(name="mnist", path=str(tmp_path / "g")), seed=0)


def test_cifar10_and_cifar100(tmp_path):
    ten = load_dataset(
        cfg(name="cifar10", path=str(write_cifar(tmp_path / "c10", False, n_train=50, n_test=10))), seed=0
    )
    assert ten.input_shape == (3, 32, 32) and ten.num_classes == 10 and len(ten.test) == 10
    assert len(ten.train) + len(ten.val) == 50
    hundred = load_dataset(
        cfg(name="cifar100", path=str(write_cifar(tmp_path / "c100", True, n_train=50, n_test=10))), seed=0
    )
    assert hundred.num_classes == 100 and len(hundred.test) == 10
    (tmp_path / "c10" / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(UserError, match=r"data_batch_3: unreadable CIFAR pickle"):
        load_dataset(cfg(name="cifar10", path=str(tmp_path / "c10")), seed=0)


def test_npz_and_missing_array(tmp_path):
    data = load_dataset(
        cfg(name="npz", path=str(write_npz(tmp_path / "d.npz", n_train=40, n_test=16))), seed=0
    )
    assert data.input_shape == (3, 12, 12) and data.num_classes == 4 and len(data.train) == 30
    with pytest.raises(UserError, match=r"bad.npz: npz is missing array y_test"):
        load_dataset(cfg(name="npz", path=str(write_npz(tmp_path / "bad.npz", drop="y_test"))), seed=0)


def test_labels_outside_num_classes(tmp_path):
    path = write_npz(tmp_path / "d.npz")
    with pytest.raises(UserError, match=r"label 3 outside \[0, 3\)"):
        load_dataset(cfg(name="npz", path=str(path), num_classes=3), seed=0)


def test_imagefolder_streams_and_checks(tmp_path):
    root = write_png_folder(tmp_path / "imgs", n_train=8, n_test=3)
    data = load_dataset(cfg(name="imagefolder", path=str(root), image_size=8, grayscale=True), seed=0)
    assert isinstance(data.train, DatasetSplit) and data.input_shape == (1, 8, 8) and data.num_classes == 3
    assert (len(data.train), len(data.val), len(data.test)) == (18, 6, 9)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    first = [y.tolist() for _, y in data.train.batches(5, g1)]
    assert first == [y.tolist() for _, y in data.train.batches(5, g2)]  # seeded, deterministic order
    assert sorted(y for batch in first for y in batch) == sorted(data.train.dataset[i][1] for i in range(18))
    (root / "test" / "dog" / "1.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(UserError, match=r"dog/1.png: image fails to decode"):
        _ = load_dataset(cfg(name="imagefolder", path=str(root)), seed=0).test.x
    (root / "test" / "fox").mkdir()
    with pytest.raises(UserError, match=r"class folders differ .*fox"):
        load_dataset(cfg(name="imagefolder", path=str(root)), seed=0)


def test_missing_path_names_the_field(tmp_path):
    with pytest.raises(UserError, match=r"data.path: .*nowhere not found"):
        load_dataset(cfg(name="mnist", path=str(tmp_path / "nowhere")), seed=0)
    with pytest.raises(ValueError, match=r"data.path"):
        cfg(name="cifar10")


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


def test_data_section_refusals_name_the_field():
    with pytest.raises(
        UserError, match=r"data.augment: needs images \(C, H, W\), got samples of shape \(1, 40\)"
    ):
        load_dataset(cfg(name="mnist1d", augment={"horizontal_flip": True}), seed=0)
    with pytest.raises(UserError, match=r"data.normalize: 2 mean values for 1 input channels"):
        load_dataset(cfg(name="synthetic", normalize={"mean": [0, 0], "std": [1, 1]}), seed=0)
    with pytest.raises(ValueError, match=r"unknown dataset 'imagenet'"):
        cfg(name="imagenet")
