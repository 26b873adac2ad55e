"""cli/sweep.py: `paiexport sweep`'s options, the shard message and the failed runs named last."""

from __future__ import annotations

import io
import json

import pytest
import typer
from clitest import invoke, one_line_error
from rich.console import Console

import paiexport.cli.sweep as sweep_cli
import paiexport.sweep
from paiexport.cli.sweep import report_failures


def test_a_sweep_needs_a_recipe_or_collect():
    one_line_error(invoke("sweep"), "sweep: give a RECIPE, or --collect DIR")


def test_collect_refuses_a_folder_that_is_no_sweep(tmp_path):
    one_line_error(invoke("sweep", "--collect", tmp_path), f"--collect {tmp_path}: no sweep.json")


def test_an_unknown_backend_is_named(tiny_recipe_dict, write_recipe, tmp_path):
    result = invoke("sweep", write_recipe(tiny_recipe_dict), "--backend", "slurm", "--out", tmp_path / "s")
    one_line_error(result, "--backend 'slurm': choose local or ray")
    assert not (tmp_path / "s").exists()


def test_a_shard_with_nothing_to_run_says_how_to_collect(tiny_recipe_dict, write_recipe, tmp_path):
    out = tmp_path / "sweep [red]one[/red]"  # printed as it is: no markup, no line break
    args = ["--grid", "method.name=snip", "--shard", "2/3", "--out", out]  # 2 runs: snip and dense
    result = invoke("sweep", write_recipe(tiny_recipe_dict), *args)
    assert result.exit_code == 0, result.output
    assert "shard 2/3: 0 of 2 runs" in result.output
    last = result.output.strip().splitlines()[-1]
    assert last == f"shard done in {out}; when every shard is: paiexport sweep --collect {out}"
    planned = [r["name"] for r in json.loads((out / "sweep.json").read_text())["runs"]]
    assert planned == ["method.name=snip__seed=0", "method.name=dense__seed=0"]
    assert not (out / "sweep.md").exists() and not [p for p in out.iterdir() if p.is_dir()]


def test_collect_prints_the_table_then_the_folder(tmp_path, monkeypatch):
    out = tmp_path / "s [bold]x"

    def collected(folder):
        (folder / "sweep.md").write_text("| method | dense |\n")
        return []

    monkeypatch.setattr(paiexport.sweep, "collect_sweep", collected)
    out.mkdir()
    result = invoke("sweep", "--collect", out)
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines() == [
        "| method | dense |",
        "",
        f"sweep folder: {out}  (sweep.csv, sweep.md, sweep.png, one folder per run)",
    ]


@pytest.fixture
def printed(monkeypatch) -> io.StringIO:
    buffer = io.StringIO()
    monkeypatch.setattr(sweep_cli, "out", Console(file=buffer, width=200, color_system=None))
    return buffer


def test_no_failed_run_prints_nothing(printed):
    report_failures([], 3)
    assert printed.getvalue() == ""


def test_failed_runs_are_named_last_and_exit_1(printed):
    with pytest.raises(typer.Exit) as stopped:
        report_failures([("a__seed=0", "FAILED: gates failed: min_sparsity"), ("b__seed=1", "FAILED: x")], 5)
    assert stopped.value.exit_code == 1
    assert printed.getvalue().splitlines() == [
        "a__seed=0: FAILED: gates failed: min_sparsity",
        "b__seed=1: FAILED: x",
        "FAILED: 2 of 5 runs",
    ]
