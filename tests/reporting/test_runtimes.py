"""report.json `runtimes` and `validation.<variant>.runtimes`: built, typed, read back, shown."""

from __future__ import annotations

import pytest

from paiexport.bench.runtime_checks import RuntimeCheck, RuntimeOutcome
from paiexport.bench.runtime_latency import RuntimeLatency
from paiexport.bench.runtimes import RuntimeInfo
from paiexport.bench.stats import LatencyStats
from paiexport.errors import UserError
from paiexport.reporting.html import runtimes as runtimes_html
from paiexport.reporting.report import latency_sections, percent
from paiexport.reporting.runtimes import runtime_figures, runtime_note, runtime_rows, runtime_sections
from paiexport.reporting.schema import RunReport
from paiexport.verify.validate import accuracy_validation


def _stats(ms: float) -> dict[int, dict[int, LatencyStats]]:
    return {1: {1: LatencyStats(ms, ms, ms, 1e3 / ms, ms, ms, ms, "thread", 1)}}


def outcome() -> RuntimeOutcome:
    """dense 2 ms and compact 0.5 ms in onnxruntime; 1 ms and 0.4 ms in openvino; int8 unreadable there."""
    latency = RuntimeLatency(
        stats={
            "onnxruntime": {"dense": _stats(2.0), "compact": _stats(0.5), "int8": _stats(0.25)},
            "openvino": {"dense": _stats(1.0), "compact": _stats(0.4)},
        },
        unreadable={"openvino": {"int8": "RuntimeError: no QGemm"}},
    )
    dense = accuracy_validation("dense", True, True, 0.0, True, 0.9, 0.9, True)
    compact = accuracy_validation("compact", True, True, 1e-6, True, 0.9, 0.9, True)
    int8 = accuracy_validation("int8", True, False, float("inf"), False, 0.0, 0.9, False)
    checks = {
        "dense": RuntimeCheck("openvino", dense),
        "compact": RuntimeCheck("openvino", compact),
        "int8": RuntimeCheck("openvino", int8, "RuntimeError: no QGemm"),
    }
    info = {"openvino": RuntimeInfo("openvino", "2026.4.1-22982", "AMD EPYC", "bf16", "f32", True)}
    return RuntimeOutcome(latency, {"openvino": checks}, info)


def report() -> RunReport:
    run = outcome()
    onnxruntime = run.latency.stats["onnxruntime"]
    validation = {
        v: {**accuracy_validation(v, True, True, 0.0, True, 0.9, 0.9, True).to_dict()} for v in onnxruntime
    }
    for v, check in run.checks["openvino"].items():
        validation[v]["runtimes"] = {"openvino": check.to_dict()}
    raw = {
        "validation": validation,
        **latency_sections(onnxruntime),
        "runtimes": runtime_sections(run),
    }
    return RunReport.from_dict(RunReport.from_dict(raw).to_json_dict())  # written and read back


def test_sections_hold_ratios_in_the_same_runtime_and_against_onnxruntime():
    sections = runtime_sections(outcome())
    assert list(sections) == ["openvino"]  # onnxruntime's figures stay at the top level
    ov = sections["openvino"]
    assert ov["speedup_vs_dense"]["compact"]["1"]["1"] == pytest.approx(2.5)
    assert ov["speedup_vs_dense_onnxruntime"]["compact"]["1"]["1"] == pytest.approx(5.0)
    assert ov["speedup_vs_dense_onnxruntime"]["dense"]["1"]["1"] == pytest.approx(2.0)
    assert set(ov["latency"]) == {"dense", "compact"}
    assert ov["unreadable"] == {"int8": "RuntimeError: no QGemm"}
    assert ov["info"]["default_precision"] == "bf16" and ov["info"]["precision"] == "f32"


def test_the_typed_report_reads_them_back():
    typed = report()
    figures = runtime_figures(typed.runtimes, "openvino")
    assert figures.latency["compact"]["1"]["1"].cpu_median_ms == 0.4
    assert figures.info.lossy_default
    entry = typed.validation["int8"].runtimes["openvino"]
    assert not entry.loads and not entry.deployable
    assert entry.reason == "unreadable in openvino: RuntimeError: no QGemm"
    with pytest.raises(UserError, match=r"^report has no runtimes\.tvm \(the run's bench\.runtimes"):
        runtime_figures(typed.runtimes, "tvm")
    with pytest.raises(UserError, match=r"^report has no runtimes\.openvino"):
        runtime_figures(None, "openvino")


def test_rows_show_each_file_in_each_runtime_with_both_ratios():
    headers, rows = runtime_rows(report(), percent, "test acc")
    assert headers == ["variant", "runtime", "b1 t1", "test acc", "verdict"]
    by = {(r[0], r[1]): r for r in rows}
    assert by["compact", "onnxruntime"][2] == "0.500 ms (4.00×)"
    assert by["compact", "openvino"][2:] == ["0.400 ms (2.50× / 5.00×)", "90.00%", "pass"]
    assert by["int8", "openvino"][2:] == ["unreadable", "-", "unreadable in openvino: RuntimeError: no QGemm"]
    note = runtime_note(report().runtimes)
    assert "openvino 2026.4.1 computes in f32 (this CPU's default: bf16)" in note


def test_html_shows_the_table_only_when_other_runtimes_ran():
    assert "<h2>Runtimes</h2>" in runtimes_html(report()) and "2.50× / 5.00×" in runtimes_html(report())
    assert runtimes_html(RunReport.from_dict({"validation": {}})) == ""
