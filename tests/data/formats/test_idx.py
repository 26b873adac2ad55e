"""IDX files (MNIST, Fashion-MNIST), raw or gzipped: read, or refused in one line naming the file."""

from __future__ import annotations

import gzip
import tracemalloc

import pytest
from userdata import write_idx

from paiexport.data import DataConfig, Split, load_dataset
from paiexport.data.formats import idx
from paiexport.errors import UserError


def cfg(**kw) -> DataConfig:
    return DataConfig.model_validate({"val_fraction": 0.25, **kw})


def _idx_header(shape: tuple[int, ...]) -> bytes:
    return bytes([0, 0, 0x08, len(shape)]) + b"".join(d.to_bytes(4, "big") for d in shape)


def test_idx_header_whose_shape_overflows_int64(tmp_path):
    """2**31 * 2**31 * 4 wraps to 0 in int64: an empty file must not pass for that shape."""
    folder = write_idx(tmp_path / "m", gz=False, n_train=20, n_test=10)
    (folder / "train-images-idx3-ubyte").write_bytes(_idx_header((1 << 31, 1 << 31, 4)))
    with pytest.raises(UserError, match=r"train-images-idx3-ubyte: truncated IDX file \(0 bytes"):
        load_dataset(cfg(name="mnist", path=str(folder)), seed=0)


def test_idx_gzip_bomb_stops_at_the_declared_size(tmp_path):
    folder = write_idx(tmp_path / "m", gz=True, n_train=20, n_test=10)
    bomb = gzip.compress(_idx_header((1, 12, 12)) + bytes(96 << 20), compresslevel=1)
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(bomb)
    tracemalloc.start()
    try:
        with pytest.raises(UserError, match=r"t10k-images-idx3-ubyte.gz: IDX file holds more data than"):
            idx.load(folder)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, peak  # 96 MiB were never inflated


def test_idx_sizes_and_splits(tmp_path):
    folder = write_idx(tmp_path / "m", gz=False, n_train=20, n_test=10)
    images = folder / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes() + b"\0")
    with pytest.raises(UserError, match=r"train-images-idx3-ubyte: IDX file holds more data than its shape"):
        idx.load(folder)
    folder = write_idx(tmp_path / "e", gz=True, n_train=20, n_test=0)
    with pytest.raises(UserError, match=r"t10k-images-idx3-ubyte.gz holds no samples; the test split"):
        load_dataset(cfg(name="mnist", path=str(folder)), seed=0)
    labels = folder / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(gzip.compress(_idx_header((1,)) + b"\x0c"))
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx_header((1, 12, 12)) + bytes(144)))
    with pytest.raises(UserError, match=r"t10k-labels-idx1-ubyte.gz: label 12 outside \[0, 10\)"):
        load_dataset(cfg(name="mnist", path=str(folder)), seed=0)


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
