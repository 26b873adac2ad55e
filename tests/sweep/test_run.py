import csv
import json
import struct

import pytest
from typer.testing import CliRunner

from paiexport.cli import app
from paiexport.cli.overrides import parse_overrides
from paiexport.errors import UserError
from paiexport.reporting.sweep_report import Cell, aggregate, markdown_table, write_outputs
from paiexport.sweep.plan import GridAxis, parse_grid, plan_sweep

runner = CliRunner()


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


def test_plan_covers_grid_seeds_and_dense(tiny_recipe_dict):
    grid = [parse_grid("method.name=random,snip"), parse_grid("sparsity.target=0.5,0.9")]
    runs = plan_sweep(tiny_recipe_dict, "r.yaml", grid, 2, parse_overrides(["train.epochs=1"]))
    names = [r.name for r in runs]
    assert len(runs) == 2 * 2 * 2 + 2  # grid x seeds, and dense once per seed
    assert "method.name=snip__sparsity.target=0.9__seed=1" in names
    assert "method.name=dense__seed=0" in names and "method.name=dense__seed=1" in names
    snip = next(r for r in runs if r.name == "method.name=snip__sparsity.target=0.9__seed=1").recipe
    assert (snip.method.name, snip.sparsity.target, snip.seed, snip.train.epochs) == ("snip", 0.9, 1, 1)
    assert len({r.recipe.digest() for r in runs}) == len(runs)


def test_folder_names_stay_unique_when_sanitizing_loses_characters(tiny_recipe_dict):
    grid = [parse_grid('sparsity.exclude=["out.*"],["out.?"]')]
    runs = plan_sweep(tiny_recipe_dict, "r.yaml", grid, 1, [])
    swept = [r for r in runs if r.recipe.method.name == "snip"]
    assert [r.recipe.sparsity.exclude for r in swept] == [["out.*"], ["out.?"]]
    assert len({r.name for r in swept}) == 2
    assert all(r.name.startswith("sparsity.exclude=--out.---__seed=0-") for r in swept)
    assert len({r.name for r in runs}) == len(runs) == 4  # and a dense baseline per exclude value


def test_values_with_the_same_text_are_refused_before_running(tiny_recipe_dict):
    with pytest.raises(UserError, match=r"share the folder sparsity\.target=0\.9__seed=0"):
        plan_sweep(tiny_recipe_dict, "r.yaml", [parse_grid('sparsity.target=0.9,"0.9"')], 1, [])


def test_bad_grid_fails_before_any_run(tiny_recipe_dict, write_recipe, tmp_path):
    with pytest.raises(UserError, match="--grid"):
        parse_grid("method.name")
    assert parse_grid("sparsity.target=0.5, 0.9") == GridAxis("sparsity.target", (0.5, 0.9))
    recipe = str(write_recipe(tiny_recipe_dict))
    result = runner.invoke(
        app, ["sweep", recipe, "--grid", "sparsity.target=0.5,1.5", "--out", str(tmp_path / "s")]
    )
    assert result.exit_code == 2 and "sparsity.target" in result.output
    assert not (tmp_path / "s").exists()


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
