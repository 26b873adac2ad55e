import json

import pytest
from typer.testing import CliRunner

from paiexport.cli import app
from paiexport.errors import UserError
from paiexport.recipe import validate_recipe
from paiexport.reporting.gates import GatesConfig, evaluate_gates
from paiexport.reporting.schema import RunReport

runner = CliRunner()


def fabricated_report(gates: dict | None = None) -> dict:
    """The keys `check` reads, with numbers chosen so each gate's worst case is known."""
    return {
        "recipe": {"name": "fab", "gates": gates or {}},
        "accuracy": {"torch": 0.90, "onnx": {"dense": 0.90, "sparse": 0.90, "int8": 0.87}},
        "sparsity": {"target": 0.9, "reached": 0.8995},
        "latency_ms": {
            "dense": {"1": {"1": 0.50, "2": 0.40}, "64": {"1": 6.0, "2": 4.0}},
            "int8": {"1": {"1": 0.20, "2": 0.25}, "64": {"1": 2.0, "2": 1.5}},
        },
        "speedup_vs_dense": {
            "dense": {"1": {"1": 1.0, "2": 1.0}, "64": {"1": 1.0, "2": 1.0}},
            "int8": {"1": {"1": 2.5, "2": 1.6}, "64": {"1": 3.0, "2": 2.67}},
        },
        "size_bytes": {
            "dense": {"raw": 2_000_000, "gzip": 1_800_000},
            "int8": {"raw": 520_000, "gzip": 400_000},
        },
    }


@pytest.fixture
def report_file(tmp_path):
    def write(report: dict) -> str:
        path = tmp_path / "report.json"
        path.write_text(json.dumps(report))
        return str(path)

    return write


# (option, value that passes, value that fails); the worst case is in the comment.
GATES = [
    ("--min-accuracy", "0.87", "0.871"),  # int8 0.87
    ("--max-accuracy-drop", "3.0", "2.9"),  # int8 is 3 points below torch
    ("--max-latency-ms", "64=6.0", "64=5.99"),  # dense, 1 thread: 6.0 ms
    ("--min-speedup", "int8=1.6", "int8=1.61"),  # batch 1, 2 threads
    ("--max-size-mb", "int8=0.52", "int8=0.519"),  # 520 000 bytes
    ("--min-sparsity", "0.8995", "0.9"),  # reached 0.8995
]


@pytest.mark.parametrize(("option", "passing", "failing"), GATES)
def test_each_gate_passes_and_fails_at_its_limit(report_file, option, passing, failing):
    path = report_file(fabricated_report())
    ok = runner.invoke(app, ["check", path, option, passing])
    assert ok.exit_code == 0, ok.output
    assert ok.output.startswith("PASS") and "1 passed, 0 failed" in ok.output
    bad = runner.invoke(app, ["check", path, option, failing])
    assert bad.exit_code == 1, bad.output
    assert bad.output.startswith("FAIL") and "0 passed, 1 failed" in bad.output


def test_one_line_per_gate_with_measured_and_limit(report_file):
    path = report_file(fabricated_report())
    gates = "--min-accuracy 0.8 --max-latency-ms 1=0.45 --max-latency-ms 64=10 --min-speedup int8=2"
    result = runner.invoke(app, ["check", path, *gates.split()])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 5  # four gates and the tally
    assert lines[0].startswith("PASS  min_accuracy") and "87.00% >= 80.00%  (int8)" in lines[0]
    assert lines[1].startswith("FAIL  max_latency_ms[1]") and "0.500 ms <= 0.450 ms" in lines[1]
    assert "dense, 1 thread(s)" in lines[1]
    assert lines[2].startswith("PASS  max_latency_ms[64]")
    assert lines[3].startswith("FAIL  min_speedup[int8]") and "1.60× >= 2.00×" in lines[3]


def test_gates_from_the_recipe_and_options_override(report_file, tmp_path):
    path = report_file(fabricated_report({"min_sparsity": 0.95, "max_size_mb": {"int8": 1.0}}))
    assert runner.invoke(app, ["check", path]).exit_code == 1  # 0.8995 < 0.95
    result = runner.invoke(app, ["check", str(tmp_path), "--min-sparsity", "0.5"])  # a run folder works too
    assert result.exit_code == 0, result.output
    assert "min_sparsity" in result.output and "max_size_mb[int8]" in result.output


def test_recipe_gates_section_is_typed_and_defaults_gate_nothing(tiny_recipe_dict):
    recipe = validate_recipe(tiny_recipe_dict, "r.yaml")
    assert recipe.gates.is_empty()
    recipe = validate_recipe({**tiny_recipe_dict, "gates": {"max_latency_ms": {"64": "5"}}}, "r.yaml")
    assert recipe.gates.max_latency_ms == {64: 5.0}
    with pytest.raises(UserError, match=r"gates.min_accuracy"):
        validate_recipe({**tiny_recipe_dict, "gates": {"min_accuracy": 90}}, "r.yaml")
    with pytest.raises(UserError, match=r"gates.max_speed: unknown field"):
        validate_recipe({**tiny_recipe_dict, "gates": {"max_speed": 1}}, "r.yaml")


def test_evaluate_gates_worst_case():
    gates = GatesConfig(max_latency_ms={64: 5.0}, min_speedup={"int8": 2.0})
    lat, speed = evaluate_gates(gates, RunReport.from_dict(fabricated_report()))
    assert (lat.measured, lat.passed, lat.where) == (6.0, False, "dense, 1 thread(s)")
    assert (speed.measured, speed.passed, speed.where) == (1.6, False, "batch 1, 2 thread(s)")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--min-speedup", "compact=2"], "no variant 'compact'"),
        (["--max-latency-ms", "8=1"], "batch size 8 was not benchmarked"),
        (["--max-latency-ms", "64"], "--max-latency-ms '64'"),
        (["--max-latency-ms", "x=1"], "--max-latency-ms 'x=1'"),
        (["--min-accuracy", "90"], "min_accuracy"),
        ([], "no gates"),
    ],
)
def test_bad_gates_exit_2(report_file, args, needle):
    result = runner.invoke(app, ["check", report_file(fabricated_report()), *args])
    assert result.exit_code == 2, result.output
    assert needle in result.output and "Traceback" not in result.output


def test_missing_or_broken_report_exit_2(tmp_path):
    assert runner.invoke(app, ["check", str(tmp_path / "nope"), "--min-sparsity", "0.1"]).exit_code == 2
    (tmp_path / "report.json").write_text("{oops")
    result = runner.invoke(app, ["check", str(tmp_path), "--min-sparsity", "0.1"])
    assert result.exit_code == 2 and "report.json" in result.output


def test_documented_ci_example_is_valid(report_file):
    """docs/gates-and-sweeps.md's CI command and gates: block parse, and pass on a report like snip90's."""
    import re
    import shlex
    from pathlib import Path

    import yaml

    page = (Path(__file__).resolve().parents[2] / "docs" / "gates-and-sweeps.md").read_text()
    command = re.search(r"paiexport check models/snip90\n(.*?)\n\s+- uses", page, re.S).group(1)
    options = shlex.split(command)
    snip90 = {
        "recipe": {"name": "snip90"},
        "accuracy": {"torch": 0.942, "onnx": {"dense": 0.942, "sparse": 0.942}},
        "sparsity": {"target": 0.9, "reached": 0.9},
        "latency_ms": {"dense": {"64": {"1": 0.677}}, "sparse": {"64": {"1": 0.674}}},
        "speedup_vs_dense": {"dense": {"64": {"1": 1.0}}, "sparse": {"64": {"1": 1.004}}},
        "size_bytes": {"dense": {"raw": 780216, "gzip": 1}, "sparse": {"raw": 221668, "gzip": 1}},
    }
    result = runner.invoke(app, ["check", report_file(snip90), *options])
    assert result.exit_code == 0, result.output
    assert len(result.output.strip().splitlines()) == 6  # five gates and the tally
    block = re.search(r"```yaml\ngates:\n(.*?)```", page, re.S).group(1)
    gates = GatesConfig.model_validate(yaml.safe_load("gates:\n" + block)["gates"])
    assert all(r.passed for r in evaluate_gates(gates, RunReport.from_dict(snip90)))


def test_only_the_gated_keys_are_needed(report_file):
    path = report_file({"sparsity": {"reached": 0.9}})
    assert runner.invoke(app, ["check", path, "--min-sparsity", "0.9"]).exit_code == 0
    result = runner.invoke(app, ["check", path, "--max-latency-ms", "1=1"])
    assert result.exit_code == 2 and "report has no latency_ms" in result.output


def sparsity_report(zeros: int) -> dict:
    """A 90% target over 500 000 weights in two layers, reaching `zeros` of them."""
    per_layer = {"a.weight": {"numel": 400_000}, "b.weight": {"numel": 100_000}}
    return {
        "recipe": {"gates": {}},
        "sparsity": {"target": 0.9, "reached": zeros / 500_000, "per_layer": per_layer},
    }


@pytest.mark.parametrize(("zeros", "code"), [(450_000, 0), (449_999, 0), (449_998, 1)])
def test_min_sparsity_counts_weights_with_one_weight_tolerance(report_file, zeros, code):
    result = runner.invoke(app, ["check", report_file(sparsity_report(zeros)), "--min-sparsity", "0.9"])
    assert result.exit_code == code, result.output
    assert f"{zeros} of 500000 zero" in result.output
    if code:  # 0.899996: enough digits to see why it fails
        assert "89.9996% >= 90.0000%" in result.output


def _openvino(report: dict) -> dict:
    """`runtimes.openvino` on top of `report`: int8 3.2× over dense in openvino at every setting
    but batch 1, 2 threads (2.1×); compact.int8 unreadable there."""

    def stats(ms: float) -> dict:
        return {"median_ms": ms, "p90_ms": ms, "p99_ms": ms, "throughput": 1.0}

    medians = {"dense": 3.2, "int8": 1.0}
    latency = {v: {b: {t: stats(ms) for t in ("1", "2")} for b in ("1", "64")} for v, ms in medians.items()}
    latency["int8"]["1"]["2"] = stats(1.5)
    speedups = {"dense": {b: {"1": 1.0, "2": 1.0} for b in ("1", "64")}}
    speedups["int8"] = {"1": {"1": 3.2, "2": 2.1}, "64": {"1": 3.2, "2": 3.2}}
    info = {
        "name": "openvino",
        "version": "2026.4.1",
        "default_precision": "bf16",
        "precision": "f32",
        "lossy_default": True,
    }
    figures = {
        "info": info,
        "latency": latency,
        "speedup_vs_dense": speedups,
        "speedup_vs_dense_onnxruntime": speedups,
        "unreadable": {"compact.int8": "RuntimeError: No conversion rule found for: com.microsoft.QGemm"},
    }
    return {**report, "runtimes": {"openvino": figures}}


def test_check_runtime_gates_that_runtimes_speedups_and_latency(report_file):
    path = report_file(_openvino(fabricated_report()))
    ok = runner.invoke(app, ["check", path, "--min-speedup", "int8=2.1", "--runtime", "openvino"])
    assert ok.exit_code == 0, ok.output
    assert "2.10× >= 2.10×  (openvino, batch 1, 2 thread(s))" in ok.output
    bad = runner.invoke(app, ["check", path, "--min-speedup", "int8=2.2", "--runtime", "openvino"])
    assert bad.exit_code == 1 and bad.output.startswith("FAIL  min_speedup[int8]")
    onnxruntime = runner.invoke(app, ["check", path, "--min-speedup", "int8=2.2"])  # its worst: 1.6×
    assert onnxruntime.exit_code == 1 and "1.60× >= 2.20×  (batch 1, 2 thread(s))" in onnxruntime.output
    latency = runner.invoke(app, ["check", path, "--max-latency-ms", "64=3.1", "--runtime", "openvino"])
    assert latency.exit_code == 1
    assert "3.200 ms <= 3.100 ms (openvino, dense, 1 thread(s))" in " ".join(latency.output.split())


def test_check_runtime_names_what_the_report_cannot_measure(report_file):
    with_ov = report_file(_openvino(fabricated_report()))
    args = ["check", with_ov, "--min-speedup", "compact.int8=3", "--runtime", "openvino"]
    unreadable = runner.invoke(app, args)
    assert unreadable.exit_code == 2
    why = "min_speedup[compact.int8]: compact.int8 is unreadable in openvino (RuntimeError"
    assert why in unreadable.output
    without = report_file(fabricated_report())
    missing = runner.invoke(app, ["check", without, "--min-speedup", "int8=3", "--runtime", "openvino"])
    assert missing.exit_code == 2 and "report has no runtimes.openvino" in missing.output
    unknown = runner.invoke(app, ["check", with_ov, "--min-speedup", "int8=3", "--runtime", "tvm"])
    assert unknown.exit_code == 2 and "--runtime: unknown runtime 'tvm'" in unknown.output


def test_evaluate_gates_in_a_runtime_leaves_the_other_gates_alone():
    report = RunReport.from_dict(_openvino(fabricated_report()))
    gates = GatesConfig(min_accuracy=0.8, min_speedup={"int8": 2.0})
    by_runtime = {r.gate: r for r in evaluate_gates(gates, report, "openvino")}
    assert by_runtime["min_speedup[int8]"].measured == 2.1
    assert by_runtime["min_accuracy"] == {r.gate: r for r in evaluate_gates(gates, report)}["min_accuracy"]
