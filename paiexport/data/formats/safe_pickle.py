"""Unpickling that runs no code: plain containers and numeric numpy arrays, nothing else.

A pickle names the functions it calls. Here the only names allowed are those a numpy array's
pickle uses (`_reconstruct`, `ndarray`, `dtype`, `_frombuffer`; `_codecs.encode` for bytes in
protocol 2), and each is answered by a checked stand-in, never by numpy's own function:
arrays are built with `np.frombuffer` from the bytes in the file, of plain numeric dtypes
only, and their shape must match those bytes. Before unpickling, every opcode is scanned so
that no declared length (or memo index) exceeds the file: nothing is allocated beyond it.
"""

from __future__ import annotations

import io
import math
import pickle
import pickletools
import re

import numpy as np

from paiexport.errors import shorten

NUMERIC = re.compile(r"^(b1|[iu][1248]|f[248])$")  # the dtypes an array here may have
ENDIAN = {"|", "<", ">", "="}
SIZED = {"FRAME", "PUT", "BINPUT", "LONG_BINPUT"}  # arguments that make the unpickler allocate


class Refused(Exception):
    """The pickle is not plain data; the message says why, in one line."""


class _Token:
    """Stands for `numpy.ndarray` as the pickle names it: never called, and nothing can be set on it."""

    __slots__ = ()


NDARRAY = _Token()


class _Dtype:
    """A dtype as pickled: `numpy.dtype(code, align, copy)`, then its state (byte order)."""

    def __init__(self, code: object, *_: object) -> None:
        self.code, self.order = _text(code), "|"

    def __setstate__(self, state: object) -> None:
        order = _text(state[1]) if isinstance(state, tuple) and len(state) > 1 else "?"
        if order not in ENDIAN:
            raise Refused(f"dtype byte order {shorten(order)!r}")
        self.order = order

    def resolve(self) -> np.dtype:
        if not NUMERIC.match(self.code):
            raise Refused(f"dtype {shorten(self.code)!r} (only plain numbers are read)")
        return np.dtype(self.order + self.code)


class _Array:
    """`_reconstruct(ndarray, (0,), b'b')`, then its state: (version, shape, dtype, fortran, bytes)."""

    def __init__(self, subtype: object, shape: object, *_: object) -> None:
        if subtype is not NDARRAY or shape != (0,):
            raise Refused("an array reconstructed other than numpy pickles one")
        self.array: np.ndarray | None = None

    def __setstate__(self, state: object) -> None:
        if not isinstance(state, tuple) or len(state) != 5:
            raise Refused("an array state that numpy does not write")
        _, shape, dtype, fortran, raw = state
        self.array = _from_bytes(raw, dtype, shape, "F" if fortran else "C")


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("latin1")
    if isinstance(value, str):
        return value
    raise Refused(f"a {type(value).__name__} where text belongs")


def _from_bytes(raw: object, dtype: object, shape: object, order: object) -> np.ndarray:
    """The array `shape` of `dtype` over `raw`, once the sizes agree (no allocation before)."""
    if not isinstance(raw, (bytes, bytearray)) or not isinstance(dtype, _Dtype):
        raise Refused("array data that is not bytes of a plain dtype")
    if not isinstance(shape, tuple) or not all(type(d) is int and d >= 0 for d in shape):
        raise Refused(f"array shape {shorten(shape)}")
    kind = dtype.resolve()
    if math.prod(shape) * kind.itemsize != len(raw):
        raise Refused(f"array shape {shorten(shape)} of {kind} does not match its {len(raw)} bytes")
    return np.frombuffer(raw, dtype=kind).reshape(shape, order="F" if _text(order) == "F" else "C")


def _encode(text: object, encoding: object = "utf-8") -> bytes:
    """`_codecs.encode(text, 'latin1')`: how protocol 2 writes a bytes object; no other codec."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise Refused("_codecs.encode other than of text to latin1")
    return text.encode("latin1")


ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _Array,
    ("numpy._core.multiarray", "_reconstruct"): _Array,
    ("numpy", "ndarray"): NDARRAY,
    ("numpy", "dtype"): _Dtype,
    ("numpy.core.numeric", "_frombuffer"): _from_bytes,
    ("numpy._core.numeric", "_frombuffer"): _from_bytes,
    ("_codecs", "encode"): _encode,
}


def _allowed(module: str, name: str) -> object:
    """The stand-in for an allowed global: a fresh one each time, so a BUILD can change nothing shared."""
    found = ALLOWED.get((module, name))
    if found is None:
        raise Refused(f"it calls {shorten(f'{module}.{name}')}")
    if found is NDARRAY:
        return NDARRAY

    def call(*args: object) -> object:
        return found(*args)

    return call


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        return _allowed(module, name)

    def persistent_load(self, pid: object) -> object:
        raise Refused("it holds a persistent id")


def _scan(blob: bytes) -> None:
    """No declared length beyond `blob` (pickletools raises ValueError for one), no memo index either.

    Run before unpickling, which would allocate what a length or index says before reading on.
    """
    for op, arg, _ in pickletools.genops(blob):
        if op.name in SIZED and isinstance(arg, int) and arg > len(blob):
            raise Refused(f"{op.name} {arg} exceeds the file's {len(blob)} bytes")
        if op.name in ("GLOBAL", "INST"):  # STACK_GLOBAL's names are checked by find_class
            module, _, name = str(arg).partition(" ")
            _allowed(module, name)


def _unwrap(value: object) -> object:
    return value.array if isinstance(value, _Array) else value


def loads(blob: bytes) -> object:
    """The object pickled in `blob`, py2 strings as bytes; Refused for anything but plain data.

    A dict's array values come back as numpy arrays over the bytes read. A malformed pickle
    raises what pickletools or the unpickler raise (ValueError and others).
    """
    _scan(blob)
    value = _Unpickler(io.BytesIO(blob), encoding="bytes").load()
    if isinstance(value, dict):
        return {k: _unwrap(v) for k, v in value.items()}
    return _unwrap(value)
