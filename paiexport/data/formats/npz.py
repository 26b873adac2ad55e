"""A numpy .npz archive with arrays x_train, y_train, x_test, y_test."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from paiexport.errors import UserError

ARRAYS = ("x_train", "y_train", "x_test", "y_test")


def load(path: Path) -> tuple[np.ndarray, ...]:
    if not path.is_file():
        raise UserError(f"data.path: {path} not found")
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [a for a in ARRAYS if a not in archive.files]
            if missing:
                raise UserError(
                    f"{path}: npz is missing array {', '.join(missing)} (needs {', '.join(ARRAYS)})"
                )
            x, y, xt, yt = (archive[a] for a in ARRAYS)
    except UserError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise UserError(f"{path}: unreadable npz ({type(exc).__name__})") from None
    for name, labels in (("y_train", y), ("y_test", yt)):
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            raise UserError(
                f"{path}: {name} must be a 1-D array of integer labels, got {labels.dtype}{labels.shape}"
            )
    if len(x) != len(y) or len(xt) != len(yt):
        raise UserError(f"{path}: x_train/y_train or x_test/y_test differ in length")
    if x.ndim == 1 or x.shape[1:] != xt.shape[1:]:
        raise UserError(f"{path}: x_train samples {x.shape[1:]} and x_test samples {xt.shape[1:]} differ")
    return x, y, xt, yt
