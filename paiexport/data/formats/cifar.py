"""CIFAR-10 and CIFAR-100: the python pickle batches of the official archives.

A batch is unpickled by `safe_pickle`, which runs no code: it holds a dict of plain data and
numeric numpy arrays, or it is refused naming the file. `b"data"` must be N rows of 3072 values
in [0, 255]; the labels integers in [0, 10) or [0, 100) (`data.num_classes` when set). The
training batches must hold two classes or more, the test batch at least one image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from paiexport.data.formats import checks, safe_pickle
from paiexport.data.formats.checks import show
from paiexport.errors import UserError

CIFAR10 = ([f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], b"labels")
CIFAR100 = (["train"], ["test"], b"fine_labels")


def _unpickle(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"data.path: {show(path)} not found")
    try:
        batch = safe_pickle.loads(path.read_bytes())
    except safe_pickle.Refused as exc:
        raise UserError(f"{show(path)}: refused CIFAR pickle: {exc}") from None
    except Exception as exc:  # any unpickling problem is one bad file
        raise UserError(f"{show(path)}: unreadable CIFAR pickle ({type(exc).__name__})") from None
    if not isinstance(batch, dict):
        raise UserError(f"{show(path)}: unreadable CIFAR pickle (a {type(batch).__name__}, not a dict)")
    return batch


def _read(path: Path, label_key: bytes, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    batch = _unpickle(path)
    try:
        data, labels = np.asarray(batch[b"data"]), np.asarray(batch[label_key])
    except Exception as exc:  # a key missing, ragged lists
        raise UserError(f"{show(path)}: unreadable CIFAR pickle ({type(exc).__name__})") from None
    labels = checks.labels(show(path), labels, num_classes)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
        raise UserError(f"{show(path)}: expected {len(labels)} rows of 3072 bytes, got shape {data.shape}")
    return _pixels(path, data).reshape(-1, 3, 32, 32), labels


def _pixels(path: Path, data: np.ndarray) -> np.ndarray:
    """uint8 as the archives hold them; other integers only when they lie in [0, 255]."""
    if data.dtype == np.uint8:
        return data
    if data.dtype.kind not in "iu" or (data.size and not 0 <= data.min() <= data.max() <= 255):
        raise UserError(f"{show(path)}: b'data' must hold bytes (0 to 255), got {data.dtype}")
    return data.astype(np.uint8)


def load(folder: Path, hundred: bool, num_classes: int | None = None) -> tuple[np.ndarray, ...]:
    """(x, y, x_test, y_test), images (N, 3, 32, 32) scaled to [0, 1]."""
    train_names, test_names, key = CIFAR100 if hundred else CIFAR10
    classes = num_classes or (100 if hundred else 10)
    train = [_read(folder / n, key, classes) for n in train_names]
    test = [_read(folder / n, key, classes) for n in test_names]
    x, y = np.concatenate([b[0] for b in train]), np.concatenate([b[1] for b in train])
    xt, yt = np.concatenate([b[0] for b in test]), np.concatenate([b[1] for b in test])
    where = show(folder / train_names[0]) + ("" if hundred else "..5")
    checks.not_empty(where, len(x), "training")
    checks.two_classes(where, y)
    checks.not_empty(show(folder / test_names[0]), len(xt), "test")
    return x / 255.0, y, xt / 255.0, yt
