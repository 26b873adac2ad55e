"""cli/files.py: `bench`, `check`, `validate` and `inspect` wired to the library, through Typer."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import yaml
from clitest import invoke, one_line_error
from onnx import TensorProto, helper, numpy_helper
from tinyonnx import FEATURES, linear_file, qdq_linear_file, save_graph, separating_weight, tensor

import paiexport.bench.latency
from paiexport.bench.synthetic import matmul_chain
from paiexport.cli.files import _gate_options

FAST = ("--iterations", "2", "--warmup", "0", "--threads", "1", "--batch-sizes", "1")


@pytest.fixture(scope="module")
def weight() -> np.ndarray:
    return separating_weight()


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--iterations", "2000000"),
        ("--warmup", "100001"),
        ("--batch-sizes", "1,70000"),
        ("--threads", "2000"),
    ],
)
def test_bench_names_the_option_a_setting_is_refused_for(tmp_path, option, value):
    path = matmul_chain(tmp_path / "m.onnx", 1, 8)
    one_line_error(invoke("bench", path, *FAST, option, value), f"{option}: ", "less than or equal")


def test_bench_refuses_bad_inputs_before_timing_anything(tmp_path, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("timed a file")

    monkeypatch.setattr(paiexport.bench.latency, "bench", never)
    path = matmul_chain(tmp_path / "m.onnx", 1, 8)
    out = tmp_path / "b.json"
    result = invoke("bench", path, *FAST, "--shape", "nope=1x8", "--json", out)
    one_line_error(result, "--shape nope: no file has an input of that name")
    assert not out.exists()


def test_bench_writes_its_json_into_new_folders(tmp_path):
    path = matmul_chain(tmp_path / "m.onnx", 1, 8)
    out = tmp_path / "new" / "deeper" / "b.json"
    result = invoke("bench", path, *FAST, "--json", out)
    assert result.exit_code == 0, result.output
    written = json.loads(out.read_text())
    assert list(written["files"]) == ["m.onnx"] and "onnxruntime" in written["versions"]
    assert written["settings"]["iterations"] == 2 and written["settings"]["batch_sizes"] == [1]


def test_bench_runtime_not_installed_exits_2_naming_the_extra_before_any_work(tmp_path, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("looked at the files")

    monkeypatch.setitem(sys.modules, "openvino", None)  # openvino absent
    monkeypatch.setattr(paiexport.bench.latency, "bench_inputs", never)
    out = tmp_path / "b.json"
    both = ("--runtime", "onnxruntime,openvino")
    result = invoke("bench", tmp_path / "missing.onnx", *FAST, *both, "--json", out)
    one_line_error(result)
    expected = "error: --runtime openvino: not installed; pip install 'paiexport[openvino]'"
    assert result.output.strip() == expected
    assert not out.exists()


@pytest.mark.parametrize(
    ("runtimes", "message"),
    [
        ("openvino", "--runtime: must include onnxruntime: every ratio is also taken against it"),
        ("onnxruntime,tvm", "--runtime: unknown runtime 'tvm' (choose from onnxruntime, openvino)"),
    ],
)
def test_bench_runtime_names_are_checked(tmp_path, runtimes, message):
    path = matmul_chain(tmp_path / "m.onnx", 1, 8)
    one_line_error(invoke("bench", path, *FAST, "--runtime", runtimes), message)


def test_bench_runtime_times_each_file_in_each_runtime(tmp_path):
    pytest.importorskip("openvino", reason="openvino is an optional extra: pip install 'paiexport[openvino]'")
    path = matmul_chain(tmp_path / "m.onnx", 1, 8)
    out = tmp_path / "b.json"
    result = invoke("bench", path, *FAST, "--runtime", "onnxruntime,openvino", "--json", out)
    assert result.exit_code == 0, result.output
    assert "latency per runtime" in result.output
    written = json.loads(out.read_text())
    assert written["settings"]["runtimes"] == ["onnxruntime", "openvino"]
    entry = written["runtimes"]["openvino"]["latency"]["m.onnx"]["1"]["1"]
    assert entry["speedup"] == 1.0 and entry["speedup_vs_onnxruntime"] > 0
    assert written["runtimes"]["openvino"]["info"]["precision"] == "f32"


def test_check_turns_only_the_given_options_into_gates():
    gates = _gate_options(
        ["64=5"], None, ["int8=0.5"], min_accuracy=0.9, max_accuracy_drop=None, min_sparsity=None
    )
    assert gates == {"max_latency_ms": {64: 5.0}, "max_size_mb": {"int8": 0.5}, "min_accuracy": 0.9}
    assert _gate_options(None, None, None, min_accuracy=None) == {}


def test_validate_prints_a_line_per_check_and_per_weight_and_exits_0(tmp_path, weight):
    w = weight.copy()
    w[:8] = 0.0  # 32 of 160 weights
    path = linear_file(tmp_path / "m.onnx", w)
    result = invoke("validate", path, "--data", "synthetic", "--reference", path)
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    marks = [line.split(":")[0] for line in lines[:-1]]
    assert marks == [
        f"✓ {c}" for c in ("checker", "load", "accuracy", "chance_level", "parity", "accuracy_match")
    ]
    assert lines[-1] == "  W: sparsity 20.00%"


def test_validate_exits_1_naming_the_failed_checks(tmp_path):
    path = linear_file(tmp_path / "zero.onnx", np.zeros((FEATURES, 4), np.float32))
    result = invoke("validate", path, "--data", "synthetic")
    assert result.exit_code == 1, result.output
    assert "✗ chance_level" in result.output
    assert result.output.strip().splitlines()[-1] == "broken, failed check: chance_level"


def test_validate_says_a_lossy_file_over_the_limit_is_not_deployable_and_exits_0(tmp_path, weight):
    lossy = weight.copy()
    lossy[:, 3] = 0.0
    scale = float(np.abs(lossy).max() / 127)
    path = qdq_linear_file(tmp_path / "q.onnx", np.round(lossy / scale), scale)
    reference = linear_file(tmp_path / "m.onnx", weight)
    result = invoke(
        "validate", path, "--data", "synthetic", "--reference", reference, "--max-accuracy-drop", "0"
    )
    assert result.exit_code == 0, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.endswith("pt > 0.0: not deployable (no check failed)") and "broken" not in result.output


def test_validate_refuses_a_recipe_naming_factory_code_without_trust_code(tmp_path, weight):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"data": {"name": "mydata:make"}}))
    path = linear_file(tmp_path / "m.onnx", weight)
    marker = tmp_path / "ran"
    (tmp_path / "mydata.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    result = invoke("validate", path, "--recipe", recipe)
    one_line_error(result, f"--recipe {recipe}: would import and run mydata", "--trust-code")
    assert not marker.exists()


def test_validate_without_a_dataset_names_the_option(tmp_path, weight):
    one_line_error(
        invoke("validate", linear_file(tmp_path / "m.onnx", weight)), "--data: give a dataset name"
    )


def test_inspect_json_is_the_files_findings(tmp_path, weight):
    path = linear_file(tmp_path / "m.onnx", weight, meta={"paiexport.seed": "3"})
    result = invoke("inspect", path, "--json")
    assert result.exit_code == 0, result.output
    found = json.loads(result.output)
    assert found["initializers"]["W"]["shape"] == [FEATURES, 4] and found["ops"] == {
        "Flatten": 1,
        "MatMul": 1,
    }
    assert found["metadata"] == {"paiexport.seed": "3"} and found["bytes"] == path.stat().st_size
    text = invoke("inspect", path)
    assert text.exit_code == 0 and "MatMul" in text.output and "paiexport.seed" in text.output


def token_file(path, vocab: int = 10) -> str:
    """mean over the sequence of embedding(input_ids): int64 (n, seq) ids -> (n, 4); the file
    records its vocabulary, so bench draws ids below it (an id past the table is an error)."""
    table = np.arange(vocab * 4, dtype=np.float32).reshape(vocab, 4)
    nodes = [
        helper.make_node("Gather", ["table", "input_ids"], ["embedded"]),
        helper.make_node("ReduceMean", ["embedded", "axes"], ["out"], keepdims=0),
    ]
    inits = [numpy_helper.from_array(table, "table"), numpy_helper.from_array(np.array([1]), "axes")]
    ids = tensor("input_ids", ["n", "seq"], TensorProto.INT64)
    meta = {"paiexport.input_vocab": f"input_ids={vocab}"}
    return str(save_graph(path, nodes, [ids], [tensor("out", ["n", 4])], inits, meta=meta))


def test_bench_seq_lens_times_every_file_at_every_length(tmp_path):
    files = [token_file(tmp_path / "a.onnx"), token_file(tmp_path / "b.onnx")]
    out = tmp_path / "b.json"
    result = invoke("bench", *files, *FAST, "--seq-lens", "3,7", "--json", out)
    assert result.exit_code == 0, result.output
    assert "Latency per sequence length" in result.output
    written = json.loads(out.read_text())
    rows = {(r["seq_len"], r["variant"]): r for r in written["latency_by_seq_len"]}
    assert set(rows) == {(n, f) for n in (3, 7) for f in ("a.onnx", "b.onnx")}
    assert all(r["speedup"] is not None for r in rows.values())
    # without a --shape, the main table runs the sequence inputs at the last length
    settings = written["settings"]
    assert settings["shapes"] == {"input_ids": [1, 7]} and settings["seq_lens"] == [3, 7]


def test_bench_seq_lens_on_files_without_a_sequence_axis_exits_2_before_timing(tmp_path, monkeypatch):
    monkeypatch.setattr(paiexport.bench.latency, "bench", lambda *a, **k: pytest.fail("timed a file"))
    path = matmul_chain(tmp_path / "m.onnx", 1, 8)
    result = invoke("bench", path, *FAST, "--seq-lens", "32")
    one_line_error(result, "--seq-lens: no input of these files has a sequence axis")


@pytest.mark.parametrize("value", ["0", "abc", "32,2000000"])
def test_bench_seq_lens_values_are_checked(tmp_path, value):
    one_line_error(invoke("bench", token_file(tmp_path / "a.onnx"), *FAST, "--seq-lens", value), "--seq-lens")
