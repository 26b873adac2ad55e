"""Hostile or broken dataset files: exit 2 with one line naming the file; no code run, no hang.

CIFAR pickles that call functions, IDX headers and gzip streams that lie about sizes, npz
headers that claim terabytes, FIFOs posing as images: each is refused before it can run
anything, block, or allocate more than the file holds.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import signal
import struct
import subprocess
import sys
import tracemalloc
import zipfile
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner
from userdata import write_cifar, write_idx, write_npz, write_png_folder

from paiexport.cli import app
from paiexport.data import DataConfig, load_dataset
from paiexport.data.formats import cifar, idx, imagefolder
from paiexport.errors import UserError

ROOT = Path(__file__).resolve().parents[3]


def cfg(**kw) -> DataConfig:
    return DataConfig.model_validate({"val_fraction": 0.25, **kw})


@pytest.fixture
def run_cli(tmp_path: Path, tiny_recipe_dict: dict):
    """`python -m paiexport run` of the tiny recipe reading `data`; a hang fails the test."""

    def run(data: dict, timeout: float = 90) -> subprocess.CompletedProcess:
        recipe = {**tiny_recipe_dict, "data": {"batch_size": 16, "val_fraction": 0.2, **data}}
        (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
        path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
        command = [sys.executable, "-m", "paiexport", "run", "recipe.yaml", "--out", "out"]
        env = {**os.environ, "PYTHONPATH": path}
        return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout)

    return run


def assert_refused(done: subprocess.CompletedProcess, tmp_path: Path, *words: str) -> None:
    """Exit 2, one line naming what is wrong, and neither the output nor its staging folder left."""
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert done.returncode == 2, done.stdout + done.stderr[-3000:]
    assert len(lines) == 1 and "Traceback" not in lines[0], lines
    assert all(w in lines[0] for w in words), lines[0]
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.partial-*"))


# CIFAR ----------------------------------------------------------------------------------------


class MakesMarker:
    """Unpickling this calls os.mkdir(marker): proof that a pickle ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


@pytest.mark.parametrize("hundred", [False, True])
def test_cifar_pickle_that_runs_code_is_refused_through_the_cli(tmp_path, run_cli, hundred):
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


# IDX ------------------------------------------------------------------------------------------


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


# npz ------------------------------------------------------------------------------------------


def _npz(path: Path, **arrays: np.ndarray | bytes) -> Path:
    """An npz of the four arrays (a small valid set), with some replaced; bytes are a raw .npy member."""
    base = {
        "x_train": np.zeros((4, 2)),
        "y_train": np.array([0, 1, 0, 1]),
        "x_test": np.zeros((2, 2)),
        "y_test": np.array([0, 1]),
    }
    with zipfile.ZipFile(path, "w") as archive:
        for name, value in {**base, **arrays}.items():
            if isinstance(value, np.ndarray):
                buffer = io.BytesIO()
                np.save(buffer, value)
                value = buffer.getvalue()
            archive.writestr(f"{name}.npy", value)
    return path


def _npy_header(shape: tuple[int, ...], descr: str) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        (
            {"x_train": _npy_header((10**6, 10**6), "<f8") + bytes(64)},
            r"x_train declares shape \(1000000, 1000000\)",
        ),
        ({"x_test": _npy_header((2, 2), "|O") + bytes(32)}, r"x_test holds object, not plain numbers"),
        ({"x_train": np.array([["a", "b"]] * 4)}, r"x_train holds <U1, not plain numbers"),
        ({"x_train": np.array(3.0)}, r"x_train has shape \(\); it needs \(samples"),
        ({"x_train": np.array([[0.0, np.nan]] * 4)}, r"x_train holds NaN/inf values"),
        ({"x_test": np.array([[np.inf, 0.0]] * 2)}, r"x_test holds NaN/inf values"),
        (
            {"y_train": np.array([0, 1, 2**63 + 5, 1], np.uint64)},
            r"y_train: label 9223372036854775813 outside",
        ),
        (
            {"x_test": np.zeros((0, 2)), "y_test": np.zeros(0, int)},
            r"x_test holds no samples; the test split",
        ),
        ({"y_train": np.zeros(4, int)}, r"y_train: the training split holds only class 0"),
    ],
    ids=["terabytes", "object", "strings", "0-d", "nan", "inf", "uint64", "empty-test", "one-class"],
)
def test_npz_refusals_name_the_array(tmp_path, arrays, message):
    path = _npz(tmp_path / "d.npz", **arrays)
    with pytest.raises(UserError, match=r"d\.npz: " + message):
        load_dataset(cfg(name="npz", path=str(path)), seed=0)


def test_npz_unsigned_labels_that_fit_are_read(tmp_path):
    labels = {"y_train": np.array([0, 1, 2, 1], np.uint64), "y_test": np.array([2, 0], np.uint8)}
    data = load_dataset(cfg(name="npz", path=str(_npz(tmp_path / "d.npz", **labels))), seed=0)
    assert data.num_classes == 3 and data.test.y.tolist() == [2, 0]
    with pytest.raises(UserError, match=r"d\.npz: y_train: label 2 outside \[0, 2\)"):
        load_dataset(cfg(name="npz", path=str(tmp_path / "d.npz"), num_classes=2), seed=0)


def test_npz_nan_inputs_exit_2_through_the_cli(tmp_path, write_recipe, tiny_recipe_dict):
    """Refused up front (it used to train and be reported as diverged)."""
    path = write_npz(tmp_path / "d.npz", n_train=40, n_test=8)
    arrays = dict(np.load(path))
    arrays["x_train"][3, 0, 2, 2] = np.nan
    np.savez(path, **arrays)
    recipe = write_recipe({**tiny_recipe_dict, "data": {"name": "npz", "path": str(path), "batch_size": 16}})
    result = CliRunner().invoke(app, ["run", str(recipe), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and result.output.count("\n") == 1, result.output
    assert "d.npz: x_train holds NaN/inf values" in result.output
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.partial-*"))


# image folders --------------------------------------------------------------------------------


def test_fifo_named_like_an_image_is_refused_without_hanging(tmp_path, run_cli):
    root = write_png_folder(tmp_path / "imgs", n_train=3, n_test=2)
    os.mkfifo(root / "train" / "dog" / "x.png")
    done = run_cli({"name": "imagefolder", "path": str(root)}, timeout=60)
    assert_refused(done, tmp_path, "dog/x.png", "not a regular file")


def _too_long(*_: object) -> None:
    raise TimeoutError("opening the FIFO blocked")


def test_fifo_put_there_after_listing_is_not_opened_for_long(tmp_path):
    root = write_png_folder(tmp_path / "imgs", n_train=3, n_test=2)
    train, _, _ = imagefolder.load(root, None, False)
    fifo = root / "train" / "eel" / "1.png"
    fifo.unlink()
    os.mkfifo(fifo)
    index = next(i for i, (p, _) in enumerate(train.samples) if p == fifo)
    signal.signal(signal.SIGALRM, _too_long)
    signal.alarm(20)  # the code before this change blocked in open() for good
    try:
        with pytest.raises(UserError, match=r"eel/1.png: not a regular file"):
            train[index]
    finally:
        signal.alarm(0)


def test_unreadable_class_folder(tmp_path, monkeypatch):
    """Root reads any folder, so the refusal a user gets (EACCES) is simulated at the listing calls."""
    root = write_png_folder(tmp_path / "imgs", n_train=3, n_test=2)
    locked = root / "train" / "dog"
    real_scandir, real_listdir = os.scandir, os.listdir

    def deny(real):
        def call(path="."):
            if Path(path) == locked:
                raise PermissionError(13, "Permission denied", str(path))
            return real(path)

        return call

    monkeypatch.setattr(os, "scandir", deny(real_scandir))
    monkeypatch.setattr(os, "listdir", deny(real_listdir))
    with pytest.raises(UserError, match=r"train/dog: cannot list the folder \(PermissionError\)"):
        load_dataset(cfg(name="imagefolder", path=str(root)), seed=0)


def test_class_folder_that_is_a_broken_link(tmp_path):
    root = write_png_folder(tmp_path / "imgs", classes=("cat", "dog"), n_train=3, n_test=2)
    for split in ("train", "test"):
        (root / split / "eel").symlink_to(tmp_path / "nowhere")
    with pytest.raises(UserError, match=r"train/eel: class folder is a broken link"):
        load_dataset(cfg(name="imagefolder", path=str(root)), seed=0)


def test_one_class_image_folder(tmp_path):
    root = write_png_folder(tmp_path / "imgs", classes=("cat",), n_train=3, n_test=2)
    with pytest.raises(UserError, match=r"imgs/train: the training split holds only class cat"):
        load_dataset(cfg(name="imagefolder", path=str(root)), seed=0)
