"""Image folders: streamed and decoded as read; FIFOs and unusable class folders refused, no hang."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import torch
from userdata import write_png_folder

from paiexport.data import DataConfig, DatasetSplit, load_dataset
from paiexport.data.formats import imagefolder
from paiexport.errors import UserError


def cfg(**kw) -> DataConfig:
    return DataConfig.model_validate({"val_fraction": 0.25, **kw})


def test_fifo_named_like_an_image_is_refused_without_hanging(tmp_path, run_cli, assert_refused):
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
