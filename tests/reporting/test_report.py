"""report.json's latency and size sections, and the cells report.md and the terminal table show."""

from __future__ import annotations

import json

import pytest

from paiexport.bench.latency import LatencyStats
from paiexport.reporting.report import latency_sections, percent, size_ratios, verdict_cell, write_json
from paiexport.reporting.schema import FileCheck


def test_latency_sections_keep_medians_full_stats_and_ratios_to_dense():
    stats = {
        "dense": {1: {1: LatencyStats(2.0, 3.0, 4.0, 500.0)}},
        "compact": {1: {1: LatencyStats(0.5, 0.6, 0.7, 2000.0)}},
    }
    sections = latency_sections(stats)
    assert sections["latency_ms"] == {"dense": {"1": {"1": 2.0}}, "compact": {"1": {"1": 0.5}}}
    assert sections["latency"]["compact"]["1"]["1"] == {
        "median_ms": 0.5,
        "p90_ms": 0.6,
        "p99_ms": 0.7,
        "throughput": 2000.0,
    }
    assert sections["speedup_vs_dense"] == {"dense": {"1": {"1": 1.0}}, "compact": {"1": {"1": 4.0}}}
    assert latency_sections({"compact": stats["compact"]})["speedup_vs_dense"] == {}  # no dense, no ratio


def test_size_ratios_to_dense():
    sizes = {"dense": {"raw": 1000, "gzip": 800}, "compact": {"raw": 250, "gzip": 100}}
    assert size_ratios(sizes) == {"dense": {"raw": 1.0, "gzip": 1.0}, "compact": {"raw": 0.25, "gzip": 0.125}}


def test_percent_and_missing_values():
    assert percent(0.9512) == "95.12%" and percent(1) == "100.00%"
    assert percent(None) == "-" and percent("0.5") == "-"


@pytest.mark.parametrize(
    ("fields", "cell"),
    [
        ({"passed": True}, "pass"),
        ({"passed": False, "broken_checks": ["parity", "accuracy"]}, "BROKEN: parity, accuracy"),
        ({"passed": False}, "BROKEN: failed"),
        (
            {"passed": True, "deployable": False, "reason": "-1.2 pt > 1.0: not deployable"},
            "-1.2 pt > 1.0: not deployable",
        ),
    ],
)
def test_verdict_cells(fields, cell):
    assert verdict_cell(FileCheck.model_validate(fields)) == cell
    assert verdict_cell(None) == "-"


def test_write_json_is_indented_and_keeps_key_order(tmp_path):
    write_json({"b": 1, "a": [1, 2]}, tmp_path / "r.json")
    text = (tmp_path / "r.json").read_text()
    assert text == json.dumps({"b": 1, "a": [1, 2]}, indent=2) + "\n" and text.index('"b"') < text.index(
        '"a"'
    )
