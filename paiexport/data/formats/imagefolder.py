"""`path/train/<class>/*.png|jpg` and `path/test/<class>/...` (or `val/`), decoded with Pillow as read.

Every folder is listed up front: one that cannot be listed, a class entry that is a broken
link, or an image name (by its extension) that is not a regular file (a FIFO, a device, a
folder) is refused naming it, never opened; files without an image extension are ignored.
Images are opened without blocking and checked to be regular files again when decoded.
The training split needs two classes or more, and each split at least one image.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from torch.utils.data import Dataset

from paiexport.data.formats import checks
from paiexport.data.formats.checks import show
from paiexport.errors import UserError

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}


def _listing(folder: Path) -> list[os.DirEntry]:
    """The folder's entries by name; UserError naming it when it cannot be listed."""
    try:
        with os.scandir(folder) as entries:
            return sorted(entries, key=lambda e: e.name)
    except OSError as exc:
        raise UserError(f"{show(folder)}: cannot list the folder ({type(exc).__name__})") from None


def _classes(folder: Path) -> list[str]:
    if not folder.is_dir():
        raise UserError(f"data.path: {show(folder)} not found")
    names = []
    for entry in _listing(folder):
        if entry.is_symlink() and not os.path.exists(entry.path):
            raise UserError(f"{show(entry.path)}: class folder is a broken link")
        if entry.is_dir():
            names.append(entry.name)
    if not names:
        raise UserError(f"data.path: {show(folder)} holds no class folders")
    return names


def _images(folder: Path) -> list[Path]:
    """The class folder's image files; one that is not a regular file is refused, never opened."""
    found = []
    for entry in _listing(folder):
        if Path(entry.name).suffix.lower() not in EXTENSIONS:
            continue
        if not entry.is_file():  # follows links; False for FIFOs, devices, folders, broken links
            raise UserError(f"{show(entry.path)}: not a regular file")
        found.append(Path(entry.path))
    return found


class ImageFolder(Dataset):
    """Files listed up front, each decoded when a batch needs it (nothing is held in memory)."""

    def __init__(self, folder: Path, classes: list[str], image_size: int | None, grayscale: bool) -> None:
        self.samples = [(p, label) for label, name in enumerate(classes) for p in _images(folder / name)]
        if not self.samples:
            raise UserError(f"data.path: {show(folder)} holds no images ({', '.join(sorted(EXTENSIONS))})")
        self.image_size, self.mode = image_size, "L" if grayscale else "RGB"
        self.size: tuple[int, int] | None = None
        self.size = self._decode(self.samples[0][0]).shape[1:]  # every image must match the first

    def __len__(self) -> int:
        return len(self.samples)

    def _decode(self, path: Path) -> torch.Tensor:
        from PIL import Image

        try:
            with _open(path) as f, Image.open(f) as image:
                image = image.convert(self.mode)
                if self.image_size is not None:
                    image = image.resize((self.image_size, self.image_size), Image.Resampling.BILINEAR)
                array = np.asarray(image, dtype=np.float32) / 255.0
        except UserError:
            raise
        except Exception as exc:  # Pillow raises many types for a corrupt file
            raise UserError(f"{show(path)}: image fails to decode ({type(exc).__name__})") from None
        x = torch.from_numpy(array[None] if array.ndim == 2 else array.transpose(2, 0, 1).copy())
        if self.size is not None and tuple(x.shape[1:]) != self.size:
            raise UserError(
                f"{show(path)}: image is {tuple(x.shape[1:])}, others {self.size}; set data.image_size"
            )
        return x

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        return self._decode(path), label


def _open(path: Path) -> BinaryIO:
    """`path` opened for reading without blocking (a FIFO put there since listing must not hang)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UserError(f"{show(path)}: not a regular file")
    return os.fdopen(fd, "rb")


def load(root: Path, image_size: int | None, grayscale: bool) -> tuple[ImageFolder, ImageFolder, list[str]]:
    """(train, test, class names); the class folders of train and test must be the same."""
    test_dir = root / "test" if (root / "test").is_dir() else root / "val"
    classes, test_classes = _classes(root / "train"), _classes(test_dir)
    if classes != test_classes:
        odd = sorted(set(classes) ^ set(test_classes))
        raise UserError(
            f"data.path: class folders differ between {show(root / 'train')} and {show(test_dir)}: "
            f"{', '.join(show(o, 40) for o in odd[:5])}"
        )
    train = ImageFolder(root / "train", classes, image_size, grayscale)
    checks.two_classes(
        show(root / "train"),
        np.asarray([label for _, label in train.samples]),
        [show(c, 40) for c in classes],
    )
    test = ImageFolder(test_dir, classes, image_size, grayscale)
    return train, test, classes
