"""MNIST and Fashion-MNIST: the IDX files with their standard names, raw or gzipped."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from paiexport.errors import UserError

FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
UBYTE = 0x08  # the only element type MNIST files use


def find(folder: Path, name: str) -> Path:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise UserError(f"data.path: {folder / name} not found (raw or .gz)")


def read_idx(path: Path, dims: int) -> np.ndarray:
    """One IDX array; the magic number must say unsigned bytes with `dims` dimensions."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise UserError(f"{path}: cannot read ({type(exc).__name__})") from None
    if len(raw) < 4 + 4 * dims or raw[:2] != b"\0\0" or raw[2] != UBYTE or raw[3] != dims:
        raise UserError(f"{path}: wrong magic number for an IDX file of {dims}-D unsigned bytes")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    body = raw[4 + 4 * dims :]
    if len(body) != int(np.prod(shape)):
        raise UserError(f"{path}: truncated IDX file ({len(body)} bytes of data for shape {shape})")
    return np.frombuffer(body, dtype=np.uint8).reshape(shape)


def load(folder: Path) -> tuple[np.ndarray, ...]:
    """(x, y, x_test, y_test) with images scaled to [0, 1] as (N, 1, 28, 28)."""
    x, y, xt, yt = (read_idx(find(folder, f), 3 if "images" in f else 1) for f in FILES)
    for images, labels, name in ((x, y, FILES[0]), (xt, yt, FILES[2])):
        if len(images) != len(labels):
            raise UserError(f"{folder / name}: {len(images)} images but {len(labels)} labels")
    return x[:, None] / 255.0, y, xt[:, None] / 255.0, yt
