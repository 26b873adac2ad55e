"""bench, inspect and validate on foreign ONNX files: hand-built graphs with unusual inputs."""

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from typer.testing import CliRunner

from paiexport.cli import app
from paiexport.data import DatasetName, load_data
from paiexport.verify.inputs import (
    INT_HIGH,
    InputSpec,
    graph_inputs,
    random_feeds,
    resolve_shapes,
    sequence_shapes,
)

runner = CliRunner()
FAST = ("--iterations", "2", "--warmup", "0", "--threads", "1")


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def save(path, nodes, inputs, outputs, inits=(), sparse=(), meta=None):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits), sparse_initializer=list(sparse))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    if meta:
        helper.set_model_props(model, meta)
    onnx.save(model, str(path))
    return path


def vi(name, elem, dims):
    return helper.make_tensor_value_info(name, elem, dims)


def one_line_error(result, *needles):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) <= 2
    for needle in needles:
        assert needle in result.output, result.output


def test_bench_two_inputs(tmp_path):
    f = save(
        tmp_path / "two.onnx",
        [helper.make_node("Add", ["a", "b"], ["y"])],
        [vi("a", TensorProto.FLOAT, ["n", 4]), vi("b", TensorProto.FLOAT, ["n", 4])],
        [vi("y", TensorProto.FLOAT, ["n", 4])],
    )
    out = tmp_path / "b.json"
    result = invoke("bench", str(f), "--batch-sizes", "1,8", "--json", str(out), *FAST)
    assert result.exit_code == 0, result.output
    assert set(json.loads(out.read_text())["files"]["two.onnx"]["latency"]) == {"1", "8"}


def test_int64_and_bool_inputs_get_valid_values(tmp_path):
    """Token ids index a 2-row table (Gather fails on an id >= 2); a bool input is cast."""
    table = numpy_helper.from_array(np.arange(8, dtype=np.float32).reshape(2, 4), "table")
    nodes = [
        helper.make_node("Gather", ["table", "ids"], ["e"]),
        helper.make_node("Cast", ["flag"], ["m"], to=TensorProto.FLOAT),
    ]
    f = save(
        tmp_path / "ids.onnx",
        nodes,
        [vi("ids", TensorProto.INT64, ["n", 3]), vi("flag", TensorProto.BOOL, ["n", 3])],
        [vi("e", TensorProto.FLOAT, ["n", 3, 4]), vi("m", TensorProto.FLOAT, ["n", 3])],
        [table],
    )
    specs = graph_inputs(onnx.load(str(f)), "ids.onnx")
    feeds = random_feeds(specs, resolve_shapes(specs, 64, {}, "ids.onnx"))
    assert feeds["ids"].dtype == np.int64 and feeds["ids"].shape == (64, 3)
    assert set(np.unique(feeds["ids"])) == set(range(INT_HIGH)) == {0, 1}
    assert feeds["flag"].dtype == np.bool_ and feeds["flag"].any() and not feeds["flag"].all()
    assert invoke("bench", str(f), "--batch-sizes", "1,64", *FAST).exit_code == 0


def test_string_input_and_no_input_are_refused(tmp_path):
    s = save(
        tmp_path / "s.onnx",
        [helper.make_node("Identity", ["text"], ["y"])],
        [vi("text", TensorProto.STRING, ["n"])],
        [vi("y", TensorProto.STRING, ["n"])],
    )
    one_line_error(invoke("bench", str(s), *FAST), "s.onnx", "'text'", "string")
    one_line_error(invoke("validate", str(s), "--data", "synthetic"), "'text'", "string")
    const = helper.make_node("Constant", [], ["y"], value=numpy_helper.from_array(np.ones(2, np.float32)))
    none = save(tmp_path / "none.onnx", [const], [], [vi("y", TensorProto.FLOAT, [2])])
    one_line_error(invoke("bench", str(none), *FAST), "none.onnx", "no inputs")


def test_dynamic_non_batch_dimension_needs_shape(tmp_path):
    f = save(
        tmp_path / "conv.onnx",
        [helper.make_node("Relu", ["x"], ["y"])],
        [vi("x", TensorProto.FLOAT, ["n", 3, "length"])],
        [vi("y", TensorProto.FLOAT, ["n", 3, "length"])],
    )
    one_line_error(invoke("bench", str(f), *FAST), "'x'", "dimension 2 (length)", "--shape")
    specs = graph_inputs(onnx.load(str(f)), "conv.onnx")
    assert resolve_shapes(specs, 8, {"x": (1, 3, 32)}, "conv.onnx") == {"x": (8, 3, 32)}
    out = tmp_path / "b.json"
    ok = invoke("bench", str(f), "--shape", "x=1x3x32", "--batch-sizes", "1,8", "--json", str(out), *FAST)
    assert ok.exit_code == 0, ok.output
    assert json.loads(out.read_text())["settings"]["shapes"] == {"x": [1, 3, 32]}
    one_line_error(invoke("bench", str(f), "--shape", "x=1x4x32", *FAST), "--shape x", "fixes it to 3")
    one_line_error(invoke("bench", str(f), "--shape", "nope=1x3x2", *FAST), "--shape nope")
    one_line_error(invoke("bench", str(f), "--shape", "x=1xAx2", *FAST), "--shape")


def test_fixed_batch_refuses_other_batch_sizes(tmp_path):
    f = save(
        tmp_path / "b1.onnx",
        [helper.make_node("Relu", ["x"], ["y"])],
        [vi("x", TensorProto.FLOAT, [1, 4])],
        [vi("y", TensorProto.FLOAT, [1, 4])],
    )
    one_line_error(invoke("bench", str(f), "--batch-sizes", "1,8", *FAST), "fixed batch dimension of 1", "8")
    out = tmp_path / "b.json"
    assert invoke("bench", str(f), "--batch-sizes", "1", "--json", str(out), *FAST).exit_code == 0
    stats = json.loads(out.read_text())["files"]["b1.onnx"]["latency"]
    assert list(stats) == ["1"]
    assert stats["1"]["1"]["throughput"] == pytest.approx(1 / (stats["1"]["1"]["median_ms"] / 1e3))


@pytest.mark.parametrize("batch", [1, 7])
def test_validate_a_foreign_file_with_a_fixed_batch(tmp_path, batch):
    """Samples go `batch` at a time (the last chunk padded); the accuracy is numpy's, computed here."""
    w = np.random.default_rng(1).standard_normal((40, 4)).astype(np.float32)
    nodes = [helper.make_node("Flatten", ["x"], ["f"]), helper.make_node("MatMul", ["f", "W"], ["y"])]
    f = save(
        tmp_path / "fb.onnx",
        nodes,
        [vi("x", TensorProto.FLOAT, [batch, 1, 40])],
        [vi("y", TensorProto.FLOAT, [batch, 4])],
        [numpy_helper.from_array(w, "W")],
    )
    test = load_data(DatasetName.synthetic, seed=0, val_fraction=0.1).test
    x, labels = test.x.numpy().reshape(len(test), 40), test.y.numpy()
    expected = float(((x @ w).argmax(axis=1) == labels).mean())
    assert len(labels) % 7  # the last chunk of 7 is padded
    result = invoke("validate", str(f), "--data", "synthetic")
    assert result.exit_code == 0, result.output
    assert f"{expected:.2%} on the synthetic test split ({len(labels)} samples)" in result.output


def test_validate_refuses_two_inputs_and_a_contradicting_shape(tmp_path):
    two = save(
        tmp_path / "two.onnx",
        [helper.make_node("Add", ["a", "b"], ["y"])],
        [vi("a", TensorProto.FLOAT, ["n", 40]), vi("b", TensorProto.FLOAT, ["n", 40])],
        [vi("y", TensorProto.FLOAT, ["n", 40])],
    )
    one_line_error(invoke("validate", str(two), "--data", "synthetic"), "two.onnx", "takes 2 (a, b)")
    dyn = save(
        tmp_path / "dyn.onnx",
        [helper.make_node("ReduceMean", ["x"], ["y"], keepdims=0)],
        [vi("x", TensorProto.FLOAT, ["n", 1, "len"])],
        [vi("y", TensorProto.FLOAT, ["n"])],
    )
    one_line_error(
        invoke("validate", str(dyn), "--data", "synthetic", "--shape", "x=1x1x7"), "--shape x", "1x40"
    )


def test_huge_inputs_are_refused_before_allocating(tmp_path):
    f = save(
        tmp_path / "huge.onnx",
        [helper.make_node("Relu", ["x"], ["y"])],
        [vi("x", TensorProto.FLOAT, ["n", 100_000, 100_000])],
        [vi("y", TensorProto.FLOAT, ["n", 100_000, 100_000])],
    )
    one_line_error(invoke("bench", str(f), "--batch-sizes", "1", *FAST), "--batch-sizes 1", "GiB")


def _sparse_file(tmp_path, name, values, indices, dims):
    sparse = helper.make_sparse_tensor(values, indices, dims)
    node = helper.make_node("MatMul", ["x", sparse.values.name], ["y"])
    return save(
        tmp_path / name,
        [node],
        [vi("x", TensorProto.FLOAT, ["n", 3])],
        [vi("y", TensorProto.FLOAT, ["n", 2])],
        sparse=[sparse],
    )


def test_malformed_sparse_initializers_are_refused(tmp_path):
    def vals(n, name="W"):
        return numpy_helper.from_array(np.ones(n, np.float32), name)

    def idx(a):
        return numpy_helper.from_array(np.asarray(a, np.int64), "W_idx")

    good = _sparse_file(tmp_path, "good.onnx", vals(2), idx([0, 5]), [3, 2])
    assert invoke("inspect", str(good), "--json").exit_code == 0
    cases = {
        "range.onnx": (vals(2), idx([0, 6]), [3, 2], "out of range"),
        "dims.onnx": (vals(2), idx([0, 1]), [10**9, 10**9], "declares dims"),
        "count.onnx": (vals(3), idx([0, 1]), [3, 2], "3 values but indices"),
        "negative.onnx": (vals(2), idx([0, 1]), [3, -2], "invalid dims"),
    }
    short = vals(2)
    short.raw_data = short.raw_data[:4]  # 2 values declared, 1 stored
    cases["short.onnx"] = (short, idx([0, 1]), [3, 2], "unreadable")
    for name, (v, i, dims, needle) in cases.items():
        f = _sparse_file(tmp_path, name, v, i, dims)
        one_line_error(invoke("inspect", str(f)), name, "sparse initializer 'W'", needle)
        one_line_error(invoke("validate", str(f), "--data", "synthetic"), name, needle)


def test_empty_and_non_onnx_files_are_refused(tmp_path):
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    one_line_error(invoke("inspect", str(empty)), "empty.onnx")
    one_line_error(invoke("validate", str(empty), "--data", "synthetic"), "empty.onnx")
    text = tmp_path / "notes.onnx"
    text.write_bytes(b"\x08\x01")  # a valid protobuf (ir_version 1) with no graph
    one_line_error(invoke("inspect", str(text)), "notes.onnx", "not an ONNX model")


def test_validate_refuses_a_dataset_other_than_the_recorded_one(tmp_path):
    w = numpy_helper.from_array(np.ones((40, 4), np.float32), "W")
    nodes = [helper.make_node("Flatten", ["x"], ["f"]), helper.make_node("MatMul", ["f", "W"], ["y"])]
    f = save(
        tmp_path / "m.onnx",
        nodes,
        [vi("x", TensorProto.FLOAT, ["n", 1, 40])],
        [vi("y", TensorProto.FLOAT, ["n", 4])],
        [w],
        meta={"paiexport.dataset": "mnist1d"},
    )
    one_line_error(invoke("validate", str(f), "--data", "synthetic"), "--data synthetic", "mnist1d", "m.onnx")


def test_a_recorded_vocabulary_gives_every_integer_input_its_own_range(tmp_path):
    """`paiexport.input_vocab` (written for integer-input models): ids over the whole table; a mask
    is all ones (every position attended), whatever its recorded range."""
    table = numpy_helper.from_array(np.zeros((50, 2), np.float32), "table")
    nodes = [
        helper.make_node("Gather", ["table", "ids"], ["e"]),
        helper.make_node("Cast", ["mask"], ["m"], to=TensorProto.FLOAT),
    ]
    f = save(
        tmp_path / "vocab.onnx",
        nodes,
        [vi("ids", TensorProto.INT64, ["n", 8]), vi("mask", TensorProto.INT64, ["n", 8])],
        [vi("e", TensorProto.FLOAT, ["n", 8, 2]), vi("m", TensorProto.FLOAT, ["n", 8])],
        [table],
    )
    model = onnx.load(str(f))
    onnx.helper.set_model_props(model, {"paiexport.input_vocab": "ids=50,mask=2"})
    specs = graph_inputs(model, "vocab.onnx")
    assert [(s.name, s.high) for s in specs] == [("ids", 50), ("mask", 2)]
    feeds = random_feeds(specs, resolve_shapes(specs, 64, {}, "vocab.onnx"))
    assert feeds["ids"].min() >= 0 and feeds["ids"].max() == 49 and len(np.unique(feeds["ids"])) > 40
    assert feeds["mask"].dtype == np.int64 and (feeds["mask"] == 1).all()
    onnx.helper.set_model_props(model, {"paiexport.input_vocab": "ids=x,=3,mask"})  # unreadable: ignored
    assert [s.high for s in graph_inputs(model, "vocab.onnx")] == [None, None]


def test_sequence_shapes_set_every_dynamic_second_axis_and_nothing_else():
    ids = InputSpec("input_ids", np.dtype(np.int64), ("batch", "seq"))
    mask = InputSpec("attention_mask", np.dtype(np.int64), ("batch", "seq"))
    pixels = InputSpec("pixels", np.dtype(np.float32), ("batch", 3, 8))
    data = {"input_ids": (1, 64), "pixels": (1, 3, 8)}
    assert sequence_shapes([ids, mask, pixels], data, 128) == {
        "input_ids": (1, 128),
        "attention_mask": (1, 128),  # not in the data's shapes: the batch and the length
        "pixels": (1, 3, 8),
    }
    assert sequence_shapes([pixels, InputSpec("x", np.dtype(np.float32), None)], data, 128) is None
    assert sequence_shapes([InputSpec("v", np.dtype(np.int64), ("batch",))], {}, 32) is None
