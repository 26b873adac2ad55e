"""A sweep end to end through the CLI: runs, resume, complete runs skipped, failed runs reported."""

import csv
import json
import struct

import pytest
from typer.testing import CliRunner

from paiexport.cli import app

runner = CliRunner()


def png_size(path) -> tuple[int, int]:
    blob = path.read_bytes()
    assert blob[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", blob[16:24])


def test_sweep_runs_resumes_and_skips_complete_runs(tiny_recipe_dict, write_recipe, tmp_path):
    recipe, out = str(write_recipe(tiny_recipe_dict)), tmp_path / "sweep"
    args = [
        "sweep",
        recipe,
        "--grid",
        "method.name=random,snip",
        "--set",
        "train.epochs=1",
        "--out",
        str(out),
    ]
    first = runner.invoke(app, [*args, "--jobs", "2"], catch_exceptions=False)
    assert first.exit_code == 0, first.output
    runs = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert runs == ["method.name=dense__seed=0", "method.name=random__seed=0", "method.name=snip__seed=0"]
    kept = out / "method.name=snip__seed=0" / "report.json"
    stamp = kept.stat().st_mtime_ns
    # Simulate an interruption: one run lost, a staging folder left by a killed process.
    lost = out / "method.name=random__seed=0"
    for f in sorted(lost.rglob("*"), reverse=True):
        f.rmdir() if f.is_dir() else f.unlink()
    lost.rmdir()
    (out / ".method.name=random__seed=0.partial-999999999").mkdir()
    second = runner.invoke(app, args, catch_exceptions=False)
    assert second.exit_code == 0, second.output
    assert "3 runs, 2 already complete (skipped), 1 to run" in second.output
    assert kept.stat().st_mtime_ns == stamp  # the complete run was not redone
    assert (lost / "report.json").is_file()
    assert not list(out.glob(".*partial*"))
    with (out / "sweep.csv").open() as f:
        rows = {r["method"]: r for r in csv.DictReader(f)}
    assert set(rows) == {"dense", "random", "snip"}
    report = json.loads(kept.read_text())
    assert float(rows["snip"]["accuracy"]) == pytest.approx(report["accuracy"]["torch"])
    assert "| method | dense | 80% sparse |" in (out / "sweep.md").read_text()
    assert png_size(out / "sweep.png") == (800, 500)


def test_sweep_refuses_a_folder_of_another_recipe(tiny_recipe_dict, write_recipe, tmp_path):
    recipe, out = str(write_recipe(tiny_recipe_dict)), tmp_path / "sweep"
    args = ["sweep", recipe, "--grid", "method.name=random", "--set", "train.epochs=1", "--out", str(out)]
    assert runner.invoke(app, args).exit_code == 0
    result = runner.invoke(app, [*args[:-2], "--set", "train.epochs=0", "--out", str(out)])
    assert result.exit_code == 2 and "different recipe" in result.output


def test_sweep_with_a_failed_run_finishes_the_others_and_exits_1(tiny_recipe_dict, write_recipe, tmp_path):
    tiny_recipe_dict["gates"] = {"min_sparsity": 0.7}  # the dense baseline (sparsity 0) fails it
    tiny_recipe_dict["export"]["formats"] = ["dense"]
    tiny_recipe_dict["bench"] = {"batch_sizes": [1], "threads": [1], "warmup": 0, "iterations": 2}
    recipe, out = str(write_recipe(tiny_recipe_dict)), tmp_path / "sweep"
    args = ["sweep", recipe, "--grid", "sparsity.target=0.8", "--set", "train.epochs=1", "--out", str(out)]
    result = runner.invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 1, result.output
    dense, snip = "method.name=dense__seed=0", "sparsity.target=0.8__seed=0"
    assert (out / dense / "report.json").is_file() and (out / snip / "report.json").is_file()
    with (out / "sweep.csv").open() as f:
        verdicts = {r["run"]: r["verdict"] for r in csv.DictReader(f)}
    assert verdicts == {snip: "OK", dense: "FAILED: gates failed: min_sparsity"}
    assert (
        "| dense | " in (out / "sweep.md").read_text()
        and "| 1 of 1 FAILED |" in (out / "sweep.md").read_text()
    )
    tail = result.output.strip().splitlines()[-2:]
    assert tail == [f"{dense}: FAILED: gates failed: min_sparsity", "FAILED: 1 of 2 runs"]
    collected = runner.invoke(app, ["sweep", "--collect", str(out)], catch_exceptions=False)
    assert collected.exit_code == 1 and collected.output.strip().endswith("FAILED: 1 of 2 runs")
