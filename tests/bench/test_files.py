"""files.py: what a file costs besides latency (size on disk, session creation, peak memory)."""

from __future__ import annotations

import gzip
from types import SimpleNamespace

import onnx
import pytest
from onnx import helper
from tinyonnx import save_graph, tensor

import paiexport.bench.files as files
from paiexport.bench.files import file_size, session_creation_ms, session_memory
from paiexport.bench.synthetic import matmul_chain


def test_file_size_counts_the_file_and_gzips_it_reproducibly(tmp_path):
    path = matmul_chain(tmp_path / "m.onnx", 2, 32)
    blob = path.read_bytes()
    assert file_size(path) == {"raw": len(blob), "gzip": len(gzip.compress(blob, compresslevel=6, mtime=0))}


def test_file_size_includes_external_data_files(tmp_path):
    model = onnx.load(str(matmul_chain(tmp_path / "src.onnx", 2, 32)))
    path = tmp_path / "ext.onnx"
    onnx.save(model, str(path), save_as_external_data=True, all_tensors_to_one_file=False, size_threshold=0)
    data = sorted(p for p in tmp_path.iterdir() if p.suffix != ".onnx")
    assert [p.name for p in data] == ["w0", "w1"]  # one file per weight, 4 kB each
    blob = path.read_bytes() + b"".join(p.read_bytes() for p in data)
    assert len(blob) > len(path.read_bytes()) + 8000
    assert file_size(path) == {"raw": len(blob), "gzip": len(gzip.compress(blob, compresslevel=6, mtime=0))}


def test_session_creation_is_the_median_of_interleaved_creations(tmp_path, monkeypatch):
    made: list[str] = []
    clock = iter([0.0, 0.003, 0.0, 0.010, 0.0, 0.001, 0.0, 0.020, 0.0, 0.002, 0.0, 0.030])
    monkeypatch.setattr(files, "make_session", lambda path, threads: made.append((path.name, threads)))
    monkeypatch.setattr(files, "time", SimpleNamespace(perf_counter=lambda: next(clock)))
    found = session_creation_ms({"a": tmp_path / "a.onnx", "b": tmp_path / "b.onnx"}, threads=2, repeats=3)
    assert made == [("a.onnx", 2), ("b.onnx", 2)] * 3  # A B A B A B
    assert found == {"a": pytest.approx(2.0), "b": pytest.approx(20.0)}  # medians of 3,1,2 and 10,20,30 ms


def test_session_memory_grows_with_the_weights(tmp_path):
    """A 16 MB graph needs more resident memory than a 16 kB one, measured per process."""
    small = session_memory(matmul_chain(tmp_path / "s.onnx", 1, 64), threads=1, batch=1)
    large = session_memory(matmul_chain(tmp_path / "l.onnx", 4, 1024), threads=1, batch=1)
    assert 0 < small.session_peak_mb < small.peak_rss_mb
    assert large.session_peak_mb - small.session_peak_mb > 12  # at least the 16 MB of weights, nearly


def test_a_file_the_probe_cannot_load_is_an_error_naming_it(tmp_path):
    node = helper.make_node("NoSuchOp", ["x"], ["y"], domain="nowhere")
    path = save_graph(tmp_path / "odd.onnx", [node], [tensor("x", ["n", 4])], [tensor("y", ["n", 4])])
    with pytest.raises(RuntimeError, match=rf"^memory probe failed for {path}: "):
        session_memory(path, threads=1, batch=2)
