"""CIFAR-10 and CIFAR-100: the python pickle batches of the official archives."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from paiexport.errors import UserError

CIFAR10 = ([f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], b"labels")
CIFAR100 = (["train"], ["test"], b"fine_labels")


def _read(path: Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise UserError(f"data.path: {path} not found")
    try:
        with path.open("rb") as f:
            batch = pickle.load(f, encoding="bytes")
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[label_key], dtype=np.int64)
    except Exception as exc:  # any unpickling or layout problem is one bad file
        raise UserError(f"{path}: unreadable CIFAR pickle ({type(exc).__name__})") from None
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
        raise UserError(f"{path}: expected {len(labels)} rows of 3072 bytes, got shape {data.shape}")
    return data.reshape(-1, 3, 32, 32), labels


def load(folder: Path, hundred: bool) -> tuple[np.ndarray, ...]:
    """(x, y, x_test, y_test), images (N, 3, 32, 32) scaled to [0, 1]."""
    train_names, test_names, key = CIFAR100 if hundred else CIFAR10
    train = [_read(folder / n, key) for n in train_names]
    test = [_read(folder / n, key) for n in test_names]
    x, y = np.concatenate([b[0] for b in train]), np.concatenate([b[1] for b in train])
    xt, yt = np.concatenate([b[0] for b in test]), np.concatenate([b[1] for b in test])
    return x / 255.0, y, xt / 255.0, yt
