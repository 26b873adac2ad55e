"""A sweep's summary: mean and sample std over seeds, the markdown table, sweep.csv/md/png."""

import csv
import struct

import pytest

from paiexport.reporting.sweep_report import Cell, aggregate, markdown_table, write_outputs


def png_size(path) -> tuple[int, int]:
    blob = path.read_bytes()
    assert blob[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", blob[16:24])


def row(method: str, target: float, seed: int, acc: float, **extra) -> dict:
    return {
        "run": f"{method}-{target}-{seed}",
        "method": method,
        "sparsity_target": target,
        "seed": seed,
        "accuracy": acc,
        **extra,
    }


FABRICATED = [
    row("dense", 0.0, 0, 0.80),
    row("dense", 0.0, 1, 0.84),
    row("snip", 0.5, 0, 0.78),
    row("snip", 0.5, 1, 0.80),
    row("snip", 0.5, 2, 0.82),
    row("snip", 0.9, 0, 0.70),
    row("snip", 0.9, 1, 0.74),
    row("random", 0.9, 0, 0.60),
]


def test_aggregate_mean_and_sample_std():
    cells = aggregate(FABRICATED, [])
    assert set(cells) == {"dense", "snip", "random"}
    snip = cells["snip"][0.5]
    assert snip.n == 3 and snip.mean == pytest.approx(0.80) and snip.std == pytest.approx(0.02)
    assert cells["snip"][0.9].mean == pytest.approx(0.72)
    assert cells["snip"][0.9].std == pytest.approx(0.028284271, rel=1e-6)  # sqrt(0.0008)
    assert cells["dense"][0.0].mean == pytest.approx(0.82) and cells["random"][0.9].std is None


def test_markdown_table_mean_std_next_to_dense():
    md = markdown_table(aggregate(FABRICATED, []), "t")
    lines = md.splitlines()
    assert "| method | dense | 50% sparse | 90% sparse | verdict |" in lines
    assert "| dense | 82.00% ± 2.83% (n=2) | - | - | ok |" in lines
    assert "| snip | - | 80.00% ± 2.00% (n=3) (-2.0 pts) | 72.00% ± 2.83% (n=2) (-10.0 pts) | ok |" in lines
    assert "| random | - | - | 60.00% (n=1) (-22.0 pts) | ok |" in lines


def test_extra_axes_get_their_own_lines_and_dense():
    one, nine = {"train.epochs": 1}, {"train.epochs": 9}
    rows = [
        row("dense", 0.0, 0, 0.5, **one),
        row("snip", 0.9, 0, 0.4, **one),
        row("dense", 0.0, 0, 0.9, **nine),
        row("snip", 0.9, 0, 0.8, **nine),
    ]
    md = markdown_table(aggregate(rows, ["train.epochs"]), "t")
    assert "| snip (train.epochs=1) | - | 40.00% (n=1) (-10.0 pts) | ok |" in md
    assert "| snip (train.epochs=9) | - | 80.00% (n=1) (-10.0 pts) | ok |" in md


def test_write_outputs(tmp_path):
    write_outputs(FABRICATED, [], tmp_path, "fabricated")
    with (tmp_path / "sweep.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(FABRICATED) and float(rows[2]["accuracy"]) == 0.78
    assert "82.00% ± 2.83%" in (tmp_path / "sweep.md").read_text()
    assert png_size(tmp_path / "sweep.png") == (800, 500)


def test_cell_std_single_value():
    assert Cell([0.5]).std is None and Cell([0.5, 0.5]).std == 0.0


def test_failed_runs_get_a_verdict_in_the_table_and_csv(tmp_path):
    failed = "FAILED: gates failed: min_sparsity"
    rows = [{**r, "verdict": failed if r["run"] == "snip-0.5-1" else "OK"} for r in FABRICATED]
    md = markdown_table(aggregate(rows, []), "t")
    assert (
        "| snip | - | 80.00% ± 2.00% (n=3) (-2.0 pts) | 72.00% ± 2.83% (n=2) (-10.0 pts) | 1 of 5 FAILED |"
        in md
    )
    assert "| dense | 82.00% ± 2.83% (n=2) | - | - | ok |" in md
    assert md.rstrip().endswith(f"- `snip-0.5-1`: {failed}")
    write_outputs(rows, [], tmp_path, "t")
    with (tmp_path / "sweep.csv").open() as f:
        verdicts = {r["run"]: r["verdict"] for r in csv.DictReader(f)}
    assert verdicts["snip-0.5-1"] == failed and verdicts["dense-0.0-0"] == "OK"


def test_another_tasks_primary_metric_is_compared_in_its_own_unit(tmp_path):
    rows = [
        {"run": f"{m}-{s}", "method": m, "sparsity_target": t, "seed": s, "r2": v, "metric": "r2"}
        for m, t, s, v in (("dense", 0.0, 0, 0.60), ("dense", 0.0, 1, 0.62), ("snip", 0.8, 0, 0.55))
    ]
    for r in rows:
        r["metric_percent"] = False
    write_outputs(rows, [], tmp_path, "diabetes")
    table = (tmp_path / "sweep.md").read_text()
    assert "Test r2 of the PyTorch model" in table and "in r2." in table
    assert "| dense | 0.61 ± 0.01414 (n=2) |" in table  # mean 0.61, sample std 0.0141
    assert "0.55 (n=1) (-0.06)" in table  # 0.55 - 0.61, not "-6.0 pts"
    assert "% sparse" in table and "%)" not in table and "% ±" not in table  # only the sparsity in %
