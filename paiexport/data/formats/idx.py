"""MNIST and Fashion-MNIST: the IDX files with their standard names, raw or gzipped.

The header's shape is checked before the data is read: a raw file must hold exactly the bytes
it declares; a gzipped one is inflated in chunks and refused as soon as it yields more than
declared (a declared size beyond deflate's 1032:1 is refused at once). Labels must lie in
[0, 10) (`data.num_classes` when set), the training labels hold two classes or more, and
neither split be empty.
"""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path
from typing import BinaryIO, NoReturn

import numpy as np

from paiexport.data.formats import checks
from paiexport.data.formats.checks import show
from paiexport.errors import UserError

FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
UBYTE = 0x08  # the only element type MNIST files use
CHUNK = 1 << 20  # bytes inflated (or read) at a time


def find(folder: Path, name: str) -> Path:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise UserError(f"data.path: {show(folder / name)} not found (raw or .gz)")


def _shape(path: Path, f: BinaryIO, dims: int) -> tuple[int, ...]:
    head = f.read(4 + 4 * dims)
    if len(head) < 4 + 4 * dims or head[:2] != b"\0\0" or head[2] != UBYTE or head[3] != dims:
        raise UserError(f"{show(path)}: wrong magic number for an IDX file of {dims}-D unsigned bytes")
    shape = tuple(int.from_bytes(head[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    if 0 in shape[1:]:
        raise UserError(f"{show(path)}: IDX images of shape {shape[1:]} hold no pixels")
    return shape


def _body(path: Path, f: BinaryIO, shape: tuple[int, ...], stored: int) -> bytearray:
    """The `prod(shape)` data bytes, read in chunks; never more than one chunk past them."""
    size, gz = math.prod(shape), path.suffix == ".gz"
    held = stored - (4 + 4 * len(shape))  # a raw file's data bytes, known before reading them
    if gz and size > checks.DEFLATE_RATIO * stored:
        raise UserError(f"{show(path)}: IDX shape {shape} is more than {stored} gzipped bytes can hold")
    if not gz and held != size:
        _refuse(path, shape, held)
    body = bytearray()
    while len(body) < size and (chunk := f.read(min(CHUNK, size - len(body)))):
        body += chunk
    if len(body) < size:
        _refuse(path, shape, len(body))
    if f.read(1):  # inflating goes on past the declared size: stop here
        _refuse(path, shape, size + 1)
    return body


def _refuse(path: Path, shape: tuple[int, ...], held: int) -> NoReturn:
    if held < math.prod(shape):
        raise UserError(f"{show(path)}: truncated IDX file ({held} bytes of data for shape {shape})")
    raise UserError(f"{show(path)}: IDX file holds more data than its shape {shape} declares")


def read_idx(path: Path, dims: int) -> np.ndarray:
    """One IDX array; the magic number must say unsigned bytes with `dims` dimensions."""
    try:
        stored = path.stat().st_size
        with gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb") as f:
            shape = _shape(path, f, dims)
            body = _body(path, f, shape, stored)
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise UserError(f"{show(path)}: cannot read ({type(exc).__name__})") from None
    return np.frombuffer(body, dtype=np.uint8).reshape(shape)


def load(folder: Path, num_classes: int | None = None) -> tuple[np.ndarray, ...]:
    """(x, y, x_test, y_test) with images scaled to [0, 1] as (N, 1, 28, 28)."""
    paths = [find(folder, f) for f in FILES]
    x, y, xt, yt = (read_idx(p, 3 if "images" in p.name else 1) for p in paths)
    for images, labels, at in ((x, y, paths[0]), (xt, yt, paths[2])):
        if len(images) != len(labels):
            raise UserError(f"{show(at)}: {len(images)} images but {len(labels)} labels")
    y, yt = (checks.labels(show(p), a, num_classes or 10) for p, a in ((paths[1], y), (paths[3], yt)))
    checks.not_empty(show(paths[0]), len(x), "training")
    checks.not_empty(show(paths[2]), len(xt), "test")
    checks.two_classes(show(paths[1]), y)
    return x[:, None] / 255.0, y, xt[:, None] / 255.0, yt
