"""bench.seq_lens: files with a sequence axis timed at each length, with valid token ids and
all-ones masks; files without one give nothing."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper
from tinyonnx import linear_file, save_graph, tensor

import paiexport.bench.runtime_latency as runtime_latency
from paiexport.bench.sequences import benchmark_seq_lens
from paiexport.bench.settings import BenchSettings

VOCAB = 50


def token_file(path):
    """logits = mean over the sequence of table[ids] * mask: ids and mask (batch, seq) int64."""
    table = numpy_helper.from_array(np.ones((VOCAB, 4), np.float32), "table")
    nodes = [
        helper.make_node("Gather", ["table", "input_ids"], ["e"]),
        helper.make_node("Cast", ["attention_mask"], ["m"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["m", "axis"], ["m3"]),
        helper.make_node("Mul", ["e", "m3"], ["em"]),
        helper.make_node("ReduceMean", ["em", "axis1"], ["logits"], keepdims=0),
    ]
    axes = [numpy_helper.from_array(np.array([2], np.int64), "axis")]
    axes.append(numpy_helper.from_array(np.array([1], np.int64), "axis1"))
    inputs = [
        tensor("input_ids", ["batch", "seq"], TensorProto.INT64),
        tensor("attention_mask", ["batch", "seq"], TensorProto.INT64),
    ]
    meta = {"paiexport.input_vocab": f"input_ids={VOCAB},attention_mask=2"}
    return save_graph(path, nodes, inputs, [tensor("logits", ["batch", 4])], [table, *axes], meta=meta)


def test_each_length_times_every_file_with_valid_ids_and_full_masks(tmp_path, monkeypatch):
    fed: list[dict[str, np.ndarray]] = []
    real = runtime_latency.random_feeds
    monkeypatch.setattr(runtime_latency, "random_feeds", lambda *a, **k: fed.append(real(*a, **k)) or fed[-1])
    files = {"dense": token_file(tmp_path / "a.onnx"), "compact": token_file(tmp_path / "b.onnx")}
    settings = BenchSettings(batch_sizes=[1, 2], warmup=0, iterations=2, seq_lens=[32, 128])
    timed = benchmark_seq_lens(files, settings, {"input_ids": (1, 64), "attention_mask": (1, 64)})
    assert list(timed) == [32, 128]
    for by_file in timed.values():
        assert list(by_file) == ["dense", "compact"]
        assert all(set(latency) == {1, 2} and latency[1][1].median_ms > 0 for latency in by_file.values())
    shapes = [(f["input_ids"].shape, f["attention_mask"].shape) for f in fed]
    assert shapes == [((b, n), (b, n)) for n in (32, 128) for b in (1, 2) for _ in files]
    assert all((f["attention_mask"] == 1).all() and f["input_ids"].max() < VOCAB for f in fed)
    assert max(int(f["input_ids"].max()) for f in fed) > 2  # the recorded vocabulary, not 0/1


def test_files_without_a_sequence_axis_or_lengths_give_nothing(tmp_path):
    float_file = {"dense": linear_file(tmp_path / "f.onnx", np.ones((40, 4)))}
    lengths = BenchSettings(batch_sizes=[1], warmup=0, iterations=1, seq_lens=[32])
    assert benchmark_seq_lens(float_file, lengths) == {}
    tokens = {"dense": token_file(tmp_path / "t.onnx")}
    assert benchmark_seq_lens(tokens, BenchSettings(batch_sizes=[1], warmup=0, iterations=1)) == {}
