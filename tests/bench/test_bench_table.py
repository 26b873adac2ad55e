"""`paiexport bench`'s tables and JSON from hand-set wall and CPU-time stats."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console
from rich.table import Table

from paiexport.bench.latency import BenchResult, FileBench, bench_table, file_table
from paiexport.bench.settings import FileBenchSettings
from paiexport.bench.stats import BUSY_WARNING, LatencyStats


def timed(wall_ms: float, cpu_ms: float) -> LatencyStats:
    return LatencyStats(wall_ms, wall_ms, wall_ms, 1e3 / wall_ms, cpu_ms, cpu_ms, cpu_ms, "thread", 1)


def result(dense_wall_ms: float) -> BenchResult:
    """dense: 2 ms of thread CPU time per run; compact: 0.5 ms, its wall time equal to it."""
    settings = FileBenchSettings(batch_sizes=[1], threads=[1], memory=False)
    out = BenchResult("dense.onnx", settings)
    for label, stats in (("dense.onnx", timed(dense_wall_ms, 2.0)), ("compact.onnx", timed(0.5, 0.5))):
        out.files[label] = FileBench(Path(label), {"raw": 100, "gzip": 90}, 1.0, None, {1: {1: stats}})
    return out


def text(table: Table) -> str:
    console = Console(width=250, record=True)
    console.print(table)
    return console.export_text()


@pytest.mark.parametrize(("ratio", "busy"), [(1.14, False), (1.16, True)])
def test_tables_say_the_machine_was_busy_past_15_percent(ratio, busy):
    bench = result(2.0 * ratio)
    latency, files = text(bench_table(bench)), text(file_table(bench))
    assert (BUSY_WARNING in latency) is busy and (BUSY_WARNING in files) is busy
    assert "4.00× (cpu)" in latency  # 2 / 0.5 on thread CPU time, whatever the wall times
    data = bench.to_dict()
    assert data["busy"] is busy and data["wall_cpu_ratio"]["worst"] == pytest.approx(ratio)
    assert data["wall_cpu_ratio"]["where"] == "dense.onnx, batch 1, 1 thread(s)"


def test_json_latency_entries_carry_both_ratios_and_the_basis():
    entry = result(8.0).to_dict()["files"]["compact.onnx"]["latency"]["1"]["1"]
    assert entry["median_ms"] == 0.5 and entry["cpu_median_ms"] == 0.5 and entry["cpu_kind"] == "thread"
    assert (entry["speedup"], entry["speedup_wall"], entry["speedup_cpu"], entry["basis"]) == (
        4.0,
        16.0,
        4.0,
        "cpu",
    )
