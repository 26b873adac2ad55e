"""The typed report.json (RunReport): round trip, version-1 reports, latency rows; write_deploy."""

import copy
import json

import onnx
import pytest
from onnx import TensorProto, helper
from typer.testing import CliRunner

from paiexport.bench.deploy import write_deploy
from paiexport.bench.latency import LatencyStats
from paiexport.cli import app
from paiexport.errors import UserError
from paiexport.reporting.schema import SCHEMA_VERSION, LatencyRow, RunReport
from paiexport.verify.validate import accuracy_validation


def stats(median: float, p90: float, p99: float, throughput: float) -> dict:
    return {"median_ms": median, "p90_ms": p90, "p99_ms": p99, "throughput": throughput}


def version1_report() -> dict:
    """The shape today's `run` wrote before schema_version (a rigl run, keys trimmed)."""
    return {
        "paiexport_version": "0.1.0",
        "recipe": {"name": "r", "gates": {}},
        "recipe_hash": "abc",
        "method": "rigl",
        "weights_trained": True,
        "accuracy": {"torch": 0.9, "onnx": {"dense": 0.9, "int8": 0.88}},
        "sparsity": {
            "target": 0.9,
            "reached": 0.9,
            "distribution": "erk",
            "per_layer": {
                "fc.weight": {
                    "numel": 10,
                    "target": 0.9,
                    "reached": 0.9,
                    "onnx": {"dense": 0.9, "int8": None},
                }
            },
        },
        "validation": {
            "dense": {
                "passed": True,
                "broken_checks": [],
                "deployable": True,
                "reason": "matches PyTorch",
                "accuracy": 0.9,
            }
        },
        "latency_ms": {"dense": {"1": {"1": 2.0, "2": 1.5}}, "int8": {"1": {"1": 0.5, "2": 0.6}}},
        "latency": {
            "dense": {"1": {"1": stats(2.0, 2.5, 3.0, 500.0), "2": stats(1.5, 1.6, 1.7, 666.0)}},
            "int8": {"1": {"1": stats(0.5, 0.7, 0.9, 2000.0), "2": stats(0.6, 0.8, 1.0, 1666.0)}},
        },
        "speedup_vs_dense": {"dense": {"1": {"1": 1.0, "2": 1.0}}, "int8": {"1": {"1": 4.0, "2": 2.5}}},
        "size_bytes": {"dense": {"raw": 1000, "gzip": 900}, "int8": {"raw": 300, "gzip": 250}},
        "mask_updates": {"count": 2, "updates": [{"step": 3}, {"step": 6}]},
        "gates": {"passed": True, "results": []},
        "verdict": {"exit_code": 0, "line": "OK: no file broken"},
    }


def test_round_trip_write_read_equal(tmp_path):
    report = RunReport.from_dict(version1_report()).model_copy(update={"schema_version": SCHEMA_VERSION})
    report.write(tmp_path / "report.json")
    again = RunReport.read(tmp_path)  # a run folder reads its report.json
    assert again == report
    raw = json.loads((tmp_path / "report.json").read_text())
    assert raw["schema_version"] == SCHEMA_VERSION == 3
    # The documented top-level method key stays, and the same details sit under method_details.
    updates = {"count": 2, "updates": [{"step": 3}, {"step": 6}]}
    assert raw["mask_updates"] == raw["method_details"]["mask_updates"] == updates
    assert list(raw).index("latency_rows") == list(raw).index("speedup_vs_dense") + 1


def test_version1_report_reads_with_its_method_keys():
    report = RunReport.from_dict(version1_report())
    assert report.schema_version == 1
    assert report.method_details == {"mask_updates": {"count": 2, "updates": [{"step": 3}, {"step": 6}]}}
    assert report.sparsity.per_layer["fc.weight"].onnx == {"dense": 0.9, "int8": None}
    assert report.validation["dense"].deployable and report.deploy is None


def test_newer_or_malformed_reports_are_refused_in_one_line(tmp_path):
    newer = {**version1_report(), "schema_version": SCHEMA_VERSION + 1}
    with pytest.raises(UserError, match=r"schema_version 4 is newer than this paiexport reads \(3\)"):
        RunReport.from_dict(newer)
    bad = version1_report()
    bad["validation"]["dense"]["passed"] = "perhaps"
    with pytest.raises(UserError, match=r"^report: validation\.dense\.passed: "):
        RunReport.from_dict(bad)
    (tmp_path / "report.json").write_text(json.dumps(newer))
    result = CliRunner().invoke(app, ["check", str(tmp_path)])
    assert result.exit_code == 2 and "schema_version 4" in result.output
    assert "Traceback" not in result.output


def test_latency_rows_equal_the_nested_tables():
    report = RunReport.from_dict(version1_report())
    rows = {(r.variant, r.batch, r.threads): r for r in report.latency_rows}
    assert len(rows) == 4
    timings = {"median_ms": 0.6, "p90_ms": 0.8, "p99_ms": 1.0, "throughput": 1666.0, "speedup": 2.5}
    assert rows["int8", 1, 2] == LatencyRow(variant="int8", batch=1, threads=2, **timings)
    assert rows["dense", 1, 1].p99_ms == 3.0 and rows["dense", 1, 1].speedup == 1.0
    for (v, b, t), row in rows.items():
        assert row.median_ms == report.latency_ms[v][str(b)][str(t)]
        assert row.speedup == report.speedup_vs_dense[v][str(b)][str(t)]


def identity_model(path) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    onnx.save_model(helper.make_model(graph), str(path))


def test_write_deploy_returns_its_result_and_leaves_inputs_alone(tmp_path, monkeypatch):
    files = {v: tmp_path / f"{v}.onnx" for v in ("dense", "int8")}
    for path in files.values():
        identity_model(path)
    stats = {"dense": {1: {1: LatencyStats(2.0, 2, 2, 1.0)}}, "int8": {1: {1: LatencyStats(0.5, 1, 1, 1.0)}}}
    int8 = accuracy_validation("int8", True, True, 0.1, False, 0.895, 0.9, False, parity_required=False)
    checks = {"dense": accuracy_validation("dense", True, True, 0.0, True, 0.9, 0.9, True), "int8": int8}
    before = copy.deepcopy((files, stats, checks))

    def no_logits(*_a, **_k):
        raise AssertionError("write_deploy must not recompute reference logits")

    monkeypatch.setattr("paiexport.verify.validate.torch_outputs", no_logits)
    done = write_deploy(files, stats, checks, 1.0, tmp_path / "model.deploy.onnx")
    assert (files, stats, checks) == before
    assert done.section["variant"] == "int8" and done.file == tmp_path / "model.deploy.onnx"
    assert done.stats == stats["int8"] and done.check.variant == "deploy"
    assert done.check.accuracy == 0.895 and not done.check.parity_required
    props = {p.key: p.value for p in onnx.load(str(done.file)).metadata_props}
    assert props == {"paiexport.variant": "deploy", "paiexport.deploy_source": "int8"}
    broken = accuracy_validation("dense", True, True, 1.0, False, 0.9, 0.9, True)  # failed parity
    lossy = accuracy_validation("int8", True, True, 0.1, False, 0.85, 0.9, False, parity_required=False)
    nothing = write_deploy(files, stats, {"dense": broken, "int8": lossy}, 1.0, tmp_path / "none.onnx")
    assert nothing.file is None and nothing.section["variant"] is None
    assert not (tmp_path / "none.onnx").exists()


def test_a_written_report_says_its_version_and_one_without_it_reads_as_version_1(tmp_path):
    RunReport().write(tmp_path / "report.json")  # what `run` writes: this version, not 1
    assert json.loads((tmp_path / "report.json").read_text())["schema_version"] == SCHEMA_VERSION
    assert RunReport.read(tmp_path).schema_version == SCHEMA_VERSION
    assert RunReport.from_dict({}).schema_version == 1


def test_report_json_is_strict_json_and_reads_back(tmp_path):
    from paiexport.verify.file_validation import accuracy_validation

    broken = accuracy_validation("dense", False, False, float("inf"), False, 0.0, 0.9, False)
    report = RunReport(
        validation={"dense": broken.to_dict()},
        task={"name": "custom", "primary": "pinball", "higher_is_better": False, "baseline": float("-inf")},
    )
    report.write(tmp_path / "report.json")
    text = (tmp_path / "report.json").read_text()
    assert "Infinity" not in text and "NaN" not in text
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    again = RunReport.read(tmp_path)
    assert again.validation["dense"].max_abs_diff is None and again.task.baseline is None
