"""report.json's speed keys from wall and CPU-time stats, the min_speedup gate on them, and the
busy-machine warning in report.md, report.html and the terminal table."""

from __future__ import annotations

import json

import pytest
from rich.console import Console

from paiexport.bench.stats import BUSY_WARNING, LatencyStats
from paiexport.reporting.gates import GatesConfig, evaluate_gates
from paiexport.reporting.html import render_html
from paiexport.reporting.report import latency_sections, markdown, summary_table
from paiexport.reporting.schema import RunReport
from paiexport.reporting.speed import seq_latency_rows


def timed(wall_ms: float, cpu_ms: float, kind: str = "thread") -> LatencyStats:
    return LatencyStats(wall_ms, wall_ms, wall_ms, 1e3 / wall_ms, cpu_ms, cpu_ms, cpu_ms, kind, 1)


def busy_stats(dense_wall: float = 8.0) -> dict:
    """Batch 1: 1 thread (dense's wall median inflated by load) and 2 threads (process CPU time)."""
    return {
        "dense": {1: {1: timed(dense_wall, 2.0), 2: timed(4.0, 8.0, "process")}},
        "compact": {1: {1: timed(0.5, 0.5), 2: timed(1.0, 2.0, "process")}},
    }


def test_speedups_use_thread_cpu_time_at_one_thread_and_wall_time_at_more():
    sections = latency_sections(busy_stats())
    assert sections["speedup_vs_dense"]["compact"]["1"] == {"1": 4.0, "2": 4.0}  # cpu 2/0.5, wall 4/1
    assert sections["speedup_vs_dense_wall"]["compact"]["1"] == {"1": 16.0, "2": 4.0}
    assert sections["speedup_vs_dense_cpu"]["compact"]["1"] == {"1": 4.0, "2": 4.0}  # process 8/2
    assert sections["latency_ms"]["dense"]["1"] == {"1": 8.0, "2": 4.0}  # wall medians, as before
    assert sections["latency"]["dense"]["1"]["1"]["cpu_median_ms"] == 2.0
    assert sections["busy"] is True
    worst = {"worst": 4.0, "where": "dense, batch 1, 1 thread(s)", "tolerance": 0.15}
    assert sections["wall_cpu_ratio"] == worst


def test_report_json_keys_round_trip_with_a_row_per_setting(tmp_path):
    report = RunReport(**latency_sections(busy_stats()))
    report.write(tmp_path / "report.json")
    raw = json.loads((tmp_path / "report.json").read_text())
    assert raw["busy"] is True and raw["wall_cpu_ratio"]["worst"] == 4.0
    assert raw["speedup_vs_dense_wall"]["compact"]["1"]["1"] == 16.0
    assert raw["latency"]["compact"]["1"]["2"]["cpu_kind"] == "process"
    rows = {(r["variant"], r["threads"]): r for r in raw["latency_rows"]}
    one, two = rows["compact", 1], rows["compact", 2]
    speedups = ("speedup", "speedup_wall", "speedup_cpu", "speedup_basis")
    assert [one[k] for k in speedups] == [4.0, 16.0, 4.0, "cpu"]
    assert (two["speedup"], two["speedup_wall"], two["speedup_basis"]) == (4.0, 4.0, "wall")
    assert one["cpu_median_ms"] == 0.5 and one["median_ms"] == 0.5
    assert RunReport.read(tmp_path) == report


def test_min_speedup_gates_on_thread_cpu_time():
    report = RunReport(**latency_sections({v: {1: {1: s[1][1]}} for v, s in busy_stats().items()}))
    (gate,) = evaluate_gates(GatesConfig(min_speedup={"compact": 5.0}), report)
    assert gate.measured == 4.0 and not gate.passed  # the wall ratio (16x) would have passed


def full_report(sections: dict) -> RunReport:
    return RunReport(
        recipe={"name": "r", "sparsity": {"distribution": "uniform"}},
        method="snip",
        accuracy={"torch": 0.9, "onnx": {"dense": 0.9, "compact": 0.9}},
        sparsity={"target": 0.5, "reached": 0.5},
        training={"epochs": 1, "seconds": 1.0},
        size_bytes={"dense": {"raw": 1000, "gzip": 900}, "compact": {"raw": 500, "gzip": 450}},
        size_ratio_vs_dense={"dense": {"raw": 1.0}, "compact": {"raw": 0.5}},
        **sections,
    )


def terminal(report: RunReport) -> str:
    console = Console(width=200, record=True)
    console.print(summary_table(report))
    return console.export_text()


@pytest.mark.parametrize(("dense_wall", "busy"), [(2.0 * 1.14, False), (2.0 * 1.16, True)])
def test_the_warning_shows_wherever_speed_is_shown_when_busy(dense_wall, busy):
    report = full_report(latency_sections(busy_stats(dense_wall)))
    assert report.busy is busy
    md, page = markdown(report), render_html(report, {})
    assert (f"**{BUSY_WARNING}" in md) is busy
    assert (f"<b>{BUSY_WARNING}" in page) is busy
    assert (BUSY_WARNING in terminal(report)) is busy
    assert "thread CPU time at 1 thread" in md and "thread CPU time at 1 thread" in page


def test_an_older_report_without_cpu_figures_shows_no_warning():
    wall_only = {v: {1: {1: LatencyStats(m, m, m, 1.0)}} for v, m in (("dense", 8.0), ("compact", 2.0))}
    old = latency_sections(wall_only)
    for key in ("speedup_vs_dense_wall", "speedup_vs_dense_cpu", "busy", "wall_cpu_ratio"):
        del old[key]
    report = full_report(old)
    assert report.busy is None and report.latency_rows[1].speedup_basis is None
    md = markdown(report)
    assert BUSY_WARNING not in md and "thread CPU time" not in md
    assert "(4.00×)" in md


def test_a_busy_flag_without_its_ratio_still_warns():
    report = full_report(latency_sections(busy_stats()))
    report.wall_cpu_ratio = None
    assert f"**{BUSY_WARNING}**" in markdown(report)


def test_latency_per_sequence_length_has_its_own_speedups_and_a_report_md_table(tmp_path):
    """bench.seq_lens: rows per length with speedups at that length; a report without it is as before."""
    by_seq = {
        32: {"dense": {1: {1: timed(2.0, 2.0)}}, "compact": {1: {1: timed(1.0, 1.0)}}},
        128: {"dense": {1: {1: timed(9.0, 9.0)}}, "compact": {1: {1: timed(3.0, 3.0)}}},
    }
    rows = seq_latency_rows(by_seq, "dense")
    assert [(r.seq_len, r.variant, r.speedup, r.speedup_basis) for r in rows] == [
        (32, "dense", 1.0, "cpu"),
        (32, "compact", 2.0, "cpu"),
        (128, "dense", 1.0, "cpu"),
        (128, "compact", 3.0, "cpu"),
    ]
    report = full_report({**latency_sections(by_seq[32]), "latency_by_seq_len": rows})
    report.write(tmp_path / "report.json")
    raw = json.loads((tmp_path / "report.json").read_text())
    assert raw["latency_by_seq_len"][3] == {**rows[3].model_dump(), "seq_len": 128, "cpu_median_ms": 3.0}
    assert RunReport.read(tmp_path) == report
    md = markdown(report)
    assert "## Latency per sequence length" in md
    assert "| compact | 128 | 1 | 1 | 3.000 | 3.000 | 3.00× (cpu) |" in md
    plain = full_report(latency_sections(busy_stats()))  # no bench.seq_lens: the keys it always had
    plain.write(tmp_path / "plain.json")
    assert "latency_by_seq_len" not in json.loads((tmp_path / "plain.json").read_text())
    assert "sequence length" not in markdown(plain)
