"""Small files of every real dataset format, fabricated for the tests (nothing is downloaded).

The images are learnable, so a run on them must beat #16's chance level by a wide margin: the
class sets the brightness of the image and the place of a small bright patch (see `_images`).
The test model (TINY_CNN) pools globally and mostly cannot tell where something lies, so it
learns the brightness: with a few hundred samples and ~15 epochs every run in
test_user_models.py scores 87-100% where chance level is 19-52%.
"""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np

RNG_SEED = 7
BRIGHT = 250  # the patch; the brightest value of every fabricated image


def _idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def _images(n: int, shape: tuple[int, ...], classes: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """`n` uint8 images of `shape` (rows, columns last), labels 0, 1, 2, ... cycling over `classes`.

    Class `k`: dim noise lifted by `k` steps of brightness (up to 180 of 255), and a small bright
    patch on the diagonal at a class-dependent place."""
    y = np.arange(n) % classes
    lift = y * (180 // max(classes - 1, 1))
    x = (rng.integers(0, 40, size=(n, *shape)) + lift.reshape(-1, *[1] * len(shape))).astype(np.uint8)
    for i, label in enumerate(y):
        at = (2 * label) % (min(shape[-2:]) - 1)
        x[i, ..., at : at + 2, at : at + 2] = BRIGHT
    return x, y


def write_idx(folder: Path, gz: bool, n_train: int = 300, n_test: int = 100, size: int = 12) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(RNG_SEED)
    x, y = _images(n_train, (size, size), 10, rng)
    xt, yt = _images(n_test, (size, size), 10, rng)
    names = {
        "train-images-idx3-ubyte": x,
        "train-labels-idx1-ubyte": y,
        "t10k-images-idx3-ubyte": xt,
        "t10k-labels-idx1-ubyte": yt,
    }
    for name, array in names.items():
        blob = _idx(array)
        (folder / (name + ".gz" if gz else name)).write_bytes(gzip.compress(blob) if gz else blob)
    return folder


def write_cifar(folder: Path, hundred: bool, n_train: int = 200, n_test: int = 100) -> Path:
    """CIFAR pickles (32x32x3, the format's only size): CIFAR-10 splits `n_train` over 5 batches."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(RNG_SEED)
    key = b"fine_labels" if hundred else b"labels"
    train = ["train"] if hundred else [f"data_batch_{i}" for i in range(1, 6)]
    sizes = {**{name: n_train // len(train) for name in train}, ("test" if hundred else "test_batch"): n_test}
    for name, n in sizes.items():
        x, y = _images(n, (3, 32, 32), 10, rng)
        with (folder / name).open("wb") as f:
            pickle.dump({b"data": x.reshape(n, -1), key: y.tolist()}, f)
    return folder


def write_npz(
    path: Path,
    shape: tuple[int, ...] = (3, 12, 12),
    drop: str | None = None,
    n_train: int = 200,
    n_test: int = 100,
) -> Path:
    rng = np.random.default_rng(RNG_SEED)
    x, y = _images(n_train, shape, 4, rng)
    xt, yt = _images(n_test, shape, 4, rng)
    arrays = {"x_train": x / 255.0, "y_train": y, "x_test": xt / 255.0, "y_test": yt}
    arrays.pop(drop, None)
    np.savez(path, **arrays)
    return path


def write_png_folder(
    root: Path,
    classes: tuple[str, ...] = ("cat", "dog", "eel"),
    size: int = 10,
    n_train: int = 40,
    n_test: int = 20,
) -> Path:
    """`n_train` and `n_test` RGB PNGs per class under root/train/<class>/ and root/test/<class>/."""
    from PIL import Image

    rng = np.random.default_rng(RNG_SEED)
    for split, n in (("train", n_train), ("test", n_test)):
        for name in classes:
            (root / split / name).mkdir(parents=True, exist_ok=True)
        x, y = _images(n * len(classes), (3, size, size), len(classes), rng)
        for i, (image, label) in enumerate(zip(x, y, strict=True)):
            Image.fromarray(image.transpose(1, 2, 0)).save(
                root / split / classes[label] / f"{i // len(classes)}.png"
            )
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
