"""`path/train/<class>/*.png|jpg` and `path/test/<class>/...` (or `val/`), decoded with Pillow as read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from paiexport.errors import UserError

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}


def _classes(folder: Path) -> list[str]:
    if not folder.is_dir():
        raise UserError(f"data.path: {folder} not found")
    names = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if not names:
        raise UserError(f"data.path: {folder} holds no class folders")
    return names


class ImageFolder(Dataset):
    """Files listed up front, each decoded when a batch needs it (nothing is held in memory)."""

    def __init__(self, folder: Path, classes: list[str], image_size: int | None, grayscale: bool) -> None:
        self.samples = [
            (p, label)
            for label, name in enumerate(classes)
            for p in sorted((folder / name).iterdir())
            if p.suffix.lower() in EXTENSIONS
        ]
        if not self.samples:
            raise UserError(f"data.path: {folder} holds no images ({', '.join(sorted(EXTENSIONS))})")
        self.image_size, self.mode = image_size, "L" if grayscale else "RGB"
        self.size: tuple[int, int] | None = None
        self.size = self._decode(self.samples[0][0]).shape[1:]  # every image must match the first

    def __len__(self) -> int:
        return len(self.samples)

    def _decode(self, path: Path) -> torch.Tensor:
        from PIL import Image

        try:
            with Image.open(path) as image:
                image = image.convert(self.mode)
                if self.image_size is not None:
                    image = image.resize((self.image_size, self.image_size), Image.Resampling.BILINEAR)
                array = np.asarray(image, dtype=np.float32) / 255.0
        except Exception as exc:  # Pillow raises many types for a corrupt file
            raise UserError(f"{path}: image fails to decode ({type(exc).__name__})") from None
        x = torch.from_numpy(array[None] if array.ndim == 2 else array.transpose(2, 0, 1).copy())
        if self.size is not None and tuple(x.shape[1:]) != self.size:
            raise UserError(f"{path}: image is {tuple(x.shape[1:])}, others {self.size}; set data.image_size")
        return x

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        return self._decode(path), label


def load(root: Path, image_size: int | None, grayscale: bool) -> tuple[ImageFolder, ImageFolder, list[str]]:
    """(train, test, class names); the class folders of train and test must be the same."""
    test_dir = root / "test" if (root / "test").is_dir() else root / "val"
    classes, test_classes = _classes(root / "train"), _classes(test_dir)
    if classes != test_classes:
        odd = sorted(set(classes) ^ set(test_classes))
        raise UserError(
            f"data.path: class folders differ between {root / 'train'} and {test_dir}: {', '.join(odd[:5])}"
        )
    train = ImageFolder(root / "train", classes, image_size, grayscale)
    test = ImageFolder(test_dir, classes, image_size, grayscale)
    return train, test, classes
