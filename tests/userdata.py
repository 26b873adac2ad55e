"""Tiny files of every real dataset format, fabricated for the tests (nothing is downloaded)."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np

RNG_SEED = 7


def _idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def _images(n: int, shape: tuple[int, ...], classes: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Class-dependent bright squares, so a tiny model learns something in one epoch."""
    y = np.arange(n) % classes
    x = rng.integers(0, 60, size=(n, *shape)).astype(np.uint8)
    for i, label in enumerate(y):
        x[i, ..., 2 * label : 2 * label + 3, :] = 250
    return x, y


def write_idx(folder: Path, gz: bool, n_train: int = 48, n_test: int = 24) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(RNG_SEED)
    x, y = _images(n_train, (28, 28), 10, rng)
    xt, yt = _images(n_test, (28, 28), 10, rng)
    names = {"train-images-idx3-ubyte": x, "train-labels-idx1-ubyte": y,
             "t10k-images-idx3-ubyte": xt, "t10k-labels-idx1-ubyte": yt}  # fmt: skip
    for name, array in names.items():
        blob = _idx(array)
        (folder / (name + ".gz" if gz else name)).write_bytes(gzip.compress(blob) if gz else blob)
    return folder


def write_cifar(folder: Path, hundred: bool, per_batch: int = 10) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(RNG_SEED)
    key = b"fine_labels" if hundred else b"labels"
    names = (["train"], ["test"]) if hundred else ([f"data_batch_{i}" for i in range(1, 6)], ["test_batch"])
    for name in [*names[0], *names[1]]:
        x, y = _images(per_batch, (3, 32, 32), 10, rng)
        with (folder / name).open("wb") as f:
            pickle.dump({b"data": x.reshape(per_batch, -1), key: y.tolist()}, f)
    return folder


def write_npz(path: Path, shape: tuple[int, ...] = (3, 12, 12), drop: str | None = None) -> Path:
    rng = np.random.default_rng(RNG_SEED)
    x, y = _images(40, shape, 4, rng)
    xt, yt = _images(16, shape, 4, rng)
    arrays = {"x_train": x / 255.0, "y_train": y, "x_test": xt / 255.0, "y_test": yt}
    arrays.pop(drop, None)
    np.savez(path, **arrays)
    return path


def write_png_folder(root: Path, classes: tuple[str, ...] = ("cat", "dog", "eel"), size: int = 10) -> Path:
    from PIL import Image

    rng = np.random.default_rng(RNG_SEED)
    for split, n in (("train", 8), ("test", 3)):
        for label, name in enumerate(classes):
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                x, _ = _images(1, (size, size, 3), 5, rng)
                x[0, 2 * label : 2 * label + 3] = 250
                Image.fromarray(x[0]).save(root / split / name / f"{i}.png")
    return root


TINY_CNN = '''
import torch
from torch import nn


class Block(nn.Module):
    """A residual block not in paiexport's bundle."""

    def __init__(self, ch):
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(ch)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(ch)

    def forward(self, x):
        return torch.relu(x + self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))))


class TinyResNet(nn.Module):
    def __init__(self, in_channels, num_classes, width=8):
        super().__init__()
        self.stem = nn.Conv2d(in_channels, width, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(width)
        self.block = Block(width)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x):
        out = self.block(torch.relu(self.bn(self.stem(x))))
        return self.fc(out.mean(dim=(2, 3)))


def tiny_resnet(num_classes, in_channels=1, width=8):
    return TinyResNet(in_channels, num_classes, width)
'''


def write_model_file(folder: Path, module: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{module}.py").write_text(TINY_CNN)
    return folder
