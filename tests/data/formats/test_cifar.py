"""CIFAR-10/100 pickle batches: read as the archives hold them, or refused in one line naming the file.

Pickles that call functions and lengths beyond the file are refused before they can run
anything or allocate more than the file holds (the other formats: test_idx, test_npz,
test_imagefolder).
"""

from __future__ import annotations

import io
import os
import pickle
import struct
import tracemalloc
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from userdata import write_cifar

from paiexport.data import DataConfig, load_dataset
from paiexport.data.formats import cifar
from paiexport.errors import UserError


def cfg(**kw) -> DataConfig:
    return DataConfig.model_validate({"val_fraction": 0.25, **kw})


class MakesMarker:
    """Unpickling this calls os.mkdir(marker): proof that a pickle ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


@pytest.mark.parametrize("hundred", [False, True])
def test_cifar_pickle_that_runs_code_is_refused_through_the_cli(tmp_path, run_cli, assert_refused, hundred):
    folder = write_cifar(tmp_path / "c", hundred, n_train=50, n_test=10)
    marker = tmp_path / "MARKER"
    key = b"fine_labels" if hundred else b"labels"
    with (folder / ("train" if hundred else "data_batch_1")).open("wb") as f:
        pickle.dump({b"data": MakesMarker(marker), key: [0, 1]}, f)
    done = run_cli({"name": "cifar100" if hundred else "cifar10", "path": str(folder)})
    assert not marker.exists()
    assert_refused(done, tmp_path, "train" if hundred else "data_batch_1", "refused CIFAR pickle", "mkdir")


class Py2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 str (SHORT_BINSTRING, BINSTRING), as the official archives hold them."""

    dispatch: ClassVar[dict] = dict(pickle._Pickler.dispatch)

    def save_bytes(self, obj: bytes) -> None:
        size = len(obj)
        head = (
            pickle.SHORT_BINSTRING + bytes([size])
            if size < 256
            else pickle.BINSTRING + struct.pack("<i", size)
        )
        self.write(head + obj)
        self.memoize(obj)

    dispatch[bytes] = save_bytes


def _py2_style(batch: dict) -> bytes:
    """A batch pickled as Python 2 and numpy 1.x wrote the CIFAR archives (protocol 2)."""
    buffer = io.BytesIO()
    Py2Pickler(buffer, protocol=2).dump(batch)
    return buffer.getvalue().replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")


@pytest.mark.parametrize("dump", ["protocol2", "default", "protocol5", "python2"])
def test_genuine_cifar_batches_still_load(tmp_path, dump):
    rng = np.random.default_rng(0)
    batches = {}
    for name in ["train", "test"]:
        data = rng.integers(0, 256, size=(6, 3072), dtype=np.uint8)
        batch = {
            b"batch_label": b"x",
            b"fine_labels": [0, 1, 2, 3, 99, 5],
            b"data": data,
            b"filenames": [b"a"],
        }
        blob = {
            "protocol2": lambda b: pickle.dumps(b, protocol=2),
            "default": pickle.dumps,
            "protocol5": lambda b: pickle.dumps(b, protocol=5),
            "python2": _py2_style,
        }[dump](batch)
        (tmp_path / name).write_bytes(blob)
        batches[name] = data
    x, y, xt, yt = cifar.load(tmp_path, hundred=True)
    assert np.array_equal(np.rint(x * 255.0), batches["train"].reshape(-1, 3, 32, 32))
    assert y.tolist() == [0, 1, 2, 3, 99, 5] and y.dtype == np.int64 and len(xt) == len(yt) == 6


def _cifar10_with(tmp_path: Path, name: str, batch: dict) -> Path:
    folder = write_cifar(tmp_path / "c", False, n_train=50, n_test=10)
    with (folder / name).open("wb") as f:
        pickle.dump(batch, f)
    return folder


@pytest.mark.parametrize(
    ("name", "labels", "message"),
    [
        ("data_batch_2", [3.7, 1.0], r"data_batch_2 must be a 1-D array of integer labels, got float64"),
        ("data_batch_4", [12, 1], r"data_batch_4: label 12 outside \[0, 10\)"),
        ("test_batch", [0, -1], r"test_batch: label -1 outside \[0, 10\)"),
    ],
)
def test_cifar_labels_must_be_integers_in_range(tmp_path, name, labels, message):
    folder = _cifar10_with(tmp_path, name, {b"data": np.zeros((2, 3072), np.uint8), b"labels": labels})
    with pytest.raises(UserError, match=message):
        load_dataset(cfg(name="cifar10", path=str(folder)), seed=0)


def test_cifar_lengths_beyond_the_file_allocate_nothing(tmp_path):
    """A tiny pickle declaring 1 GiB of bytes, or memo slot 2**24: nothing that size is allocated."""
    folder = write_cifar(tmp_path / "c", False, n_train=50, n_test=10)
    blobs = [
        b"\x80\x04\x8e" + struct.pack("<Q", 1 << 30) + b"abc",  # BINBYTES8 of 1 GiB, 3 bytes given
        b"\x80\x02N" + b"r" + struct.pack("<I", 1 << 24) + b".",  # LONG_BINPUT: a 256 MiB memo table
    ]
    for blob in blobs:
        (folder / "data_batch_1").write_bytes(blob)
        tracemalloc.start()
        try:
            with pytest.raises(UserError, match=r"data_batch_1: (refused|unreadable) CIFAR pickle"):
                cifar.load(folder, hundred=False)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 64 << 20, peak


def test_cifar_empty_test_batch_and_one_class(tmp_path):
    folder = _cifar10_with(tmp_path, "test_batch", {b"data": np.zeros((0, 3072), np.uint8), b"labels": []})
    with pytest.raises(UserError, match=r"test_batch holds no samples; the test split cannot be empty"):
        load_dataset(cfg(name="cifar10", path=str(folder)), seed=0)
    for i in range(1, 6):
        with (folder / f"data_batch_{i}").open("wb") as f:
            pickle.dump({b"data": np.zeros((4, 3072), np.uint8), b"labels": [7, 7, 7, 7]}, f)
    with pytest.raises(UserError, match=r"data_batch_1..5: the training split holds only class 7"):
        cifar.load(folder, hundred=False)


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
