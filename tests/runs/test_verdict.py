"""A run's verdict: broken files (exit 1) vs lossy files over the accuracy limit (not deployable)."""

import json

import numpy as np
import onnx
import pytest
import yaml
from onnx import numpy_helper
from tiny import TINY_RECIPE
from typer.testing import CliRunner

from paiexport.cli import app
from paiexport.reporting.schema import RunReport
from paiexport.runs.verdict import run_verdict
from paiexport.tasks.classification import chance_level
from paiexport.verify.rules import points

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def run_tiny(tmp_path, *overrides: str, raw: dict | None = None):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(raw or TINY_RECIPE))
    out = tmp_path / "run"
    sets = [a for o in ("train.epochs=1", *overrides) for a in ("--set", o)]
    result = invoke("run", str(recipe), "--out", str(out), *sets)
    report = json.loads((out / "report.json").read_text()) if (out / "report.json").exists() else None
    return result, out, report


def test_chance_level_hand_computed():
    # MNIST-1D: 10 balanced classes, 1000 test samples: 0.1 + 3 * sqrt(0.1 * 0.9 / 1000).
    assert chance_level(np.repeat(np.arange(10), 100), 10) == pytest.approx(0.128460, abs=1e-6)
    # The majority class beats 1/num_classes: 60 of 100 labels are 0 -> 0.6 + 3 * sqrt(0.24 / 100).
    labels = np.array([0] * 60 + [1] * 20 + [2] * 20)
    assert chance_level(labels, 3) == pytest.approx(0.6 + 3 * 0.0489898, abs=1e-6)


def test_points_has_enough_digits_to_tell_the_drop_from_the_limit():
    assert points(1.2, 1.0) == "1.2"
    assert points(1.04, 1.0) == "1.04"  # "1.0 pt > 1.0" would read as a contradiction


@pytest.fixture(scope="module")
def lossy_run(tmp_path_factory):
    """A run whose int8 files lose accuracy: class 0's output bias is raised before quantization
    (by 0.1: 71.9% -> 63.3% in onnxruntime, a loss above chance level)."""
    import paiexport.export.build as pipeline

    real = pipeline.to_int8

    def lossy_int8(source, *args, **kwargs):
        biased = onnx.ModelProto()
        biased.CopyFrom(source)
        bias = next(t for t in biased.graph.initializer if t.name == "out.bias")
        values = numpy_helper.to_array(bias).copy()
        values[0] += 0.1
        bias.CopyFrom(numpy_helper.from_array(values, bias.name))
        return real(biased, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pipeline, "to_int8", lossy_int8)
        return run_tiny(tmp_path_factory.mktemp("lossy"), "validate.max_accuracy_drop=0")


def test_lossy_int8_over_the_limit_exits_0_marked_not_deployable(lossy_run):
    result, _out, report = lossy_run
    assert result.exit_code == 0, result.output
    int8 = report["validation"]["int8"]
    assert report["accuracy"]["onnx"]["int8"] < report["accuracy"]["torch"]
    assert int8["passed"] and not int8["deployable"]
    assert int8["reason"].endswith("pt > 0.0: not deployable")
    assert report["deploy"]["variant"] in ("dense", "compact")
    assert "not deployable" in result.output and "FAIL" not in result.output
    assert result.output.strip().splitlines()[-1].startswith("OK: no file broken")
    assert report["verdict"]["exit_code"] == 0
    assert "not deployable" in (_out / "report.md").read_text()


def test_validate_lossy_int8_over_the_limit_exits_0(lossy_run):
    _result, out, _report = lossy_run
    reference = ["--reference", str(out / "model.onnx"), "--max-accuracy-drop", "0"]
    result = invoke("validate", str(out / "model.int8.onnx"), "--data", "synthetic", *reference)
    assert result.exit_code == 0, result.output
    assert "pt > 0.0: not deployable" in result.output and "broken" not in result.output


def test_chance_level_run_exits_1_naming_the_check(tmp_path):
    result, out, report = run_tiny(tmp_path, "train.optimizer.lr=1e-9")  # random weights: 6% on 4 classes
    assert result.exit_code == 1
    assert report["validation"]["dense"]["broken_checks"] == ["chance_level"]
    assert "dense (chance_level)" in result.output.strip().splitlines()[-1]
    single = invoke("validate", str(out / "model.onnx"), "--data", "synthetic")
    assert single.exit_code == 1 and "failed check: chance_level" in single.output


def test_failing_gates_exit_1_from_run(tmp_path):
    raw = {**TINY_RECIPE, "gates": {"max_size_mb": {"dense": 0.001}, "min_sparsity": 0.5}}
    result, _out, report = run_tiny(tmp_path, raw=raw)
    assert result.exit_code == 1, result.output
    assert report["gates"]["passed"] is False
    assert [(r["gate"], r["passed"]) for r in report["gates"]["results"]] == [
        ("max_size_mb[dense]", False),
        ("min_sparsity", True),
    ]
    assert "FAIL  max_size_mb[dense]" in result.output
    last = result.output.strip().splitlines()[-1]
    assert last == f"FAILED: gates failed: max_size_mb[dense]  (see {_out / 'report.html'})"


def test_gates_the_run_cannot_measure_are_refused_before_training(tmp_path):
    raw = {**TINY_RECIPE, "gates": {"max_latency_ms": {64: 5.0}}}
    result, out, _report = run_tiny(tmp_path, raw=raw)
    assert result.exit_code == 2 and "gates.max_latency_ms: batch size 64" in result.output
    assert not out.exists()


def test_run_verdict_without_auto_and_with_nothing_deployable():
    ok = {"passed": True, "broken_checks": [], "deployable": True, "reason": "matches PyTorch"}
    report = {"validation": {"dense": ok}, "deploy": None, "gates": {"passed": True, "results": []}}
    assert run_verdict(RunReport.from_dict(report)) == (0, "OK: no file broken")  # no auto: nothing to choose
    report["deploy"] = {"variant": None}  # auto asked for, nothing chosen: nothing to ship
    code, line = run_verdict(RunReport.from_dict(report))
    assert code == 1 and line.startswith("FAILED: no deployable file")
