"""A numpy .npz archive with arrays x_train, y_train, x_test, y_test.

Each array's .npy header is read first and checked against the archive before any data is:
its shape times its item size must be the member's size (a deflated member at most 1032 times
its compressed size), its dtype plain numbers (no objects, no strings). x_train and x_test
must have samples of the same shape and finite values; y_train and y_test 1-D integer labels
in [0, data.num_classes) (any count up to 1,000,000 when unset; unsigned only when they fit).
The training labels must hold two classes or more, neither split be empty.

For a task other than classification `y_*` may have any numeric dtype and shape (the task
checks them, `tasks/`), and a language model's archive may leave them out: its targets are
its token arrays `x_*`.
"""

from __future__ import annotations

import math
import zipfile
import zlib
from pathlib import Path

import numpy as np
from numpy.lib import format as npy

from paiexport.data.formats import checks
from paiexport.data.formats.checks import show
from paiexport.errors import UserError

ARRAYS = ("x_train", "y_train", "x_test", "y_test")
HEADERS = {(1, 0): npy.read_array_header_1_0, (2, 0): npy.read_array_header_2_0}
NUMBERS = "biuf"  # bool, signed, unsigned, float: labels that are not integers are refused later
CHUNK = 1 << 22  # values checked for NaN/inf at a time


def _member(path: Path, archive: zipfile.ZipFile, name: str) -> zipfile.ZipInfo:
    """The member `name`.npy, its sizes possible for the archive and for how it is stored."""
    info = archive.getinfo(f"{name}.npy")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise UserError(f"{show(path)}: {name} is compressed with method {info.compress_type}, not deflate")
    most = info.compress_size * (1 if info.compress_type == zipfile.ZIP_STORED else checks.DEFLATE_RATIO)
    if info.compress_size > path.stat().st_size or info.file_size > most:
        raise UserError(
            f"{show(path)}: {name} claims {info.file_size} bytes from {info.compress_size} stored bytes"
        )
    return info


def _declared(path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str) -> np.dtype:
    """The array's dtype, once its header's shape and dtype agree with the member's size."""
    with archive.open(info) as member:
        version = npy.read_magic(member)
        if version not in HEADERS:
            raise UserError(f"{show(path)}: {name} is a .npy file of version {version}, not 1.0 or 2.0")
        shape, _, dtype = HEADERS[version](member)
        data_bytes = info.file_size - member.tell()
    if dtype.hasobject or dtype.kind not in NUMBERS or dtype.fields is not None:
        raise UserError(f"{show(path)}: {name} holds {dtype}, not plain numbers")
    if name[0] == "x" and len(shape) < 2:
        raise UserError(f"{show(path)}: {name} has shape {shape}; it needs (samples, features...)")
    if math.prod(shape) * dtype.itemsize != data_bytes:
        raise UserError(
            f"{show(path)}: {name} declares shape {shape} of {dtype} but holds {data_bytes} bytes"
        )
    return dtype


def _read(path: Path, targets_are_inputs: bool = False) -> list[np.ndarray]:
    """x_train, y_train, x_test, y_test; with `targets_are_inputs` (a language model's tokens)
    the y arrays may be left out and are then the x arrays."""
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        missing = [a for a in ARRAYS if f"{a}.npy" not in names]
        if targets_are_inputs and set(missing) == {"y_train", "y_test"}:
            x, xt = _arrays(path, archive, ("x_train", "x_test"))
            return [x, x, xt, xt]
        if missing:
            raise UserError(
                f"{show(path)}: npz is missing array {', '.join(missing)} (needs {', '.join(ARRAYS)})"
            )
        return _arrays(path, archive, ARRAYS)


def _arrays(path: Path, archive: zipfile.ZipFile, names: tuple[str, ...]) -> list[np.ndarray]:
    """The named arrays, every header checked against the archive before any data is read."""
    members = [_member(path, archive, a) for a in names]
    for info, name in zip(members, names, strict=True):
        _declared(path, archive, info, name)
    arrays = []
    for info in members:
        with archive.open(info) as member:
            arrays.append(npy.read_array(member, allow_pickle=False))
    return arrays


def load(
    path: Path, num_classes: int | None = None, labels: bool = True, targets_are_inputs: bool = False
) -> tuple[np.ndarray, ...]:
    """(x, y, x_test, y_test) as the archive holds them, labels as int64.

    `labels=False` (a task other than classification) leaves `y_*` as they are, any dtype and
    shape: the task checks them. `targets_are_inputs` (a language model): `y_*` may be left out."""
    if not path.is_file():
        raise UserError(f"data.path: {show(path)} not found")
    try:
        x, y, xt, yt = _read(path, targets_are_inputs)
    except UserError:
        raise
    except (OSError, EOFError, ValueError, RuntimeError, zipfile.BadZipFile, zlib.error) as exc:
        raise UserError(f"{show(path)}: unreadable npz ({type(exc).__name__})") from None
    if labels:
        y, yt = (
            checks.labels(f"{show(path)}: {n}", a, num_classes) for n, a in (("y_train", y), ("y_test", yt))
        )
    if len(x) != len(y) or len(xt) != len(yt):
        raise UserError(f"{show(path)}: x_train/y_train or x_test/y_test differ in length")
    if x.shape[1:] != xt.shape[1:]:
        raise UserError(
            f"{show(path)}: x_train samples {x.shape[1:]} and x_test samples {xt.shape[1:]} differ"
        )
    for name, a in (("x_train", x), ("x_test", xt), ("y_train", y), ("y_test", yt)):
        if not _finite(a):
            raise UserError(f"{show(path)}: {name} holds NaN/inf values")
    checks.not_empty(f"{show(path)}: x_train", len(x), "training")
    checks.not_empty(f"{show(path)}: x_test", len(xt), "test")
    if labels:
        checks.two_classes(f"{show(path)}: y_train", y)
    return x, y, xt, yt


def _finite(a: np.ndarray) -> bool:
    """No NaN or infinity, checked a few million values at a time (no full-size temporary)."""
    if a.dtype.kind != "f":
        return True
    rows = max(1, CHUNK // max(1, math.prod(a.shape[1:])))
    return all(np.isfinite(a[i : i + rows]).all() for i in range(0, len(a), rows))
