"""Unpickling that runs no code: plain containers and numeric numpy arrays, every other pickle
refused in one line before anything is called or allocated."""

from __future__ import annotations

import io
import os
import pickle
import struct

import numpy as np
import pytest

from paiexport.data.formats.safe_pickle import Refused, loads


class MakesMarker:
    """Unpickling this calls os.mkdir(marker): proof that a pickle ran code."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (self.marker,)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_plain_data_and_numeric_arrays_come_back(protocol):
    arrays = {
        b"u8": np.arange(6, dtype=np.uint8).reshape(2, 3),
        b"f32": np.array([0.5, -1.0], np.float32),
        b"i64": np.array([[1, 2], [3, 4]], np.int64, order="F"),
        b"bool": np.array([True, False]),
    }
    value = loads(pickle.dumps({b"labels": [0, 1, 2], b"name": b"batch", **arrays}, protocol=protocol))
    assert value[b"labels"] == [0, 1, 2] and value[b"name"] == b"batch"
    for key, array in arrays.items():
        assert value[key].dtype == array.dtype and np.array_equal(value[key], array), key


def test_a_pickle_that_calls_a_function_is_refused_before_calling_it(tmp_path):
    marker = tmp_path / "MARKER"
    for protocol in (0, 2, 5):  # GLOBAL (scanned up front) and STACK_GLOBAL (at find_class)
        with pytest.raises(Refused, match=r"^it calls posix\.mkdir$"):
            loads(pickle.dumps({b"data": MakesMarker(str(marker))}, protocol=protocol))
    assert not marker.exists()


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.array(["ab"]), r"^dtype 'U2' \(only plain numbers are read\)$"),
        # an object array pickles its items, not bytes
        (np.array([1, "a"], dtype=object), r"^array data that is not bytes of a plain dtype$"),
    ],
)
def test_arrays_of_anything_but_plain_numbers_are_refused(array, message):
    with pytest.raises(Refused, match=message):
        loads(pickle.dumps(array, protocol=3))


def test_an_array_whose_shape_does_not_match_its_bytes_is_refused():
    blob = pickle.dumps(np.zeros(4, np.uint8), protocol=3)
    assert blob.count(b"C\x04\x00\x00\x00\x00") == 1  # SHORT_BINBYTES of the 4 data bytes
    lying = blob.replace(b"C\x04\x00\x00\x00\x00", b"C\x03\x00\x00\x00")
    with pytest.raises(Refused, match=r"^array shape \(4,\) of uint8 does not match its 3 bytes$"):
        loads(lying)


def test_lengths_and_memo_slots_beyond_the_file_allocate_nothing():
    memo = b"\x80\x02N" + b"r" + struct.pack("<I", 1 << 24) + b"."  # LONG_BINPUT 2**24
    with pytest.raises(Refused, match=rf"^LONG_BINPUT {1 << 24} exceeds the file's {len(memo)} bytes$"):
        loads(memo)
    with pytest.raises(ValueError):  # BINBYTES8 declaring 1 GiB, 3 bytes given: pickletools stops it
        loads(b"\x80\x04\x8e" + struct.pack("<Q", 1 << 30) + b"abc")


def test_persistent_ids_are_refused():
    class WithIds(pickle.Pickler):
        def persistent_id(self, obj):
            return "ref" if obj == "outside" else None

    buffer = io.BytesIO()
    WithIds(buffer, protocol=2).dump(["outside"])
    with pytest.raises(Refused, match=r"^it holds a persistent id$"):
        loads(buffer.getvalue())
