"""Checks every file format shares: integer labels in range, two classes to learn, samples to test on.

Each raises UserError naming the file (or the array of a file) at fault, before training starts.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from paiexport.errors import UserError

MAX_CLASSES = 1_000_000  # the largest data.num_classes a recipe may set
DEFLATE_RATIO = 1032  # deflate's largest expansion: a size beyond it is a lie (or a bomb)


def show(path: Path | str, limit: int = 160) -> str:
    """A file's name for a one-line message: control characters escaped, long ones cut in the middle."""
    text = str(path)
    if not text.isprintable():
        text = repr(text)[1:-1]
    return text if len(text) <= limit else f"{text[: limit // 2]}…{text[-limit // 2 :]}"


def labels(where: str, values: np.ndarray, num_classes: int | None) -> np.ndarray:
    """`values` as int64 labels in [0, num_classes) ([0, MAX_CLASSES) when the data says how many).

    Refused: anything but a 1-D array of integers (3.7 is not a label), negative labels, labels
    at or above the class count, unsigned labels too large for int64.
    """
    if values.shape == (0,):  # `[]` reads as float64; no labels, nothing wrong with them
        return values.astype(np.int64)
    if values.ndim != 1 or values.dtype.kind not in "iu":
        raise UserError(f"{where} must be a 1-D array of integer labels, got {values.dtype}{values.shape}")
    limit = num_classes or MAX_CLASSES
    low, high = int(values.min()), int(values.max())  # exact Python ints, whatever the dtype
    if low < 0 or high >= limit:
        bad = low if low < 0 else high
        raise UserError(f"{where}: label {bad} outside [0, {limit}); set data.num_classes or fix the labels")
    return values.astype(np.int64)


def two_classes(where: str, values: np.ndarray, names: list[str] | None = None) -> None:
    """A classifier needs at least two classes among the training labels."""
    if len(values) and (values != values[0]).any():
        return
    only = "no class" if not len(values) else f"only class {names[values[0]] if names else values[0]}"
    raise UserError(f"{where}: the training split holds {only}; a classifier needs at least 2")


def not_empty(where: str, count: int, split: str) -> None:
    """The training and test splits must hold samples."""
    if count == 0:
        raise UserError(f"{where} holds no samples; the {split} split cannot be empty")
