"""Sweep backends: Ray gives the same sweep.csv as local; shards plus --collect equal one sweep."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from typer.testing import CliRunner

from paiexport.cli import app
from paiexport.errors import UserError
from paiexport.sweep.backends import make_backend
from paiexport.sweep.plan import parse_shard

runner = CliRunner()
# Measured times, and the deploy file, which export.formats=auto picks as the fastest variant.
TIMING_COLUMNS = {"train_seconds", "size_ratio_deploy"}


def rows(folder: Path) -> list[dict[str, str]]:
    with (folder / "sweep.csv").open() as f:
        return [{k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in csv.DictReader(f)]


def sweep_args(recipe: str) -> list[str]:
    options = "--grid method.name=snip,random --set train.epochs=1 --set export.formats=[dense]"
    return ["sweep", recipe, *options.split()]


def sweep(recipe: str, out: Path, *extra: str) -> None:
    result = runner.invoke(app, [*sweep_args(recipe), "--out", str(out), *extra])
    assert result.exit_code == 0, result.output


def test_ray_backend_sweep_csv_equals_local(tiny_recipe_dict, write_recipe, tmp_path: Path) -> None:
    pytest.importorskip("ray", reason="ray is part of the test extra: pip install -e '.[test]'")
    recipe = str(write_recipe(tiny_recipe_dict))
    sweep(recipe, tmp_path / "local")
    sweep(recipe, tmp_path / "ray", "--backend", "ray", "--jobs", "2", "--cpus-per-run", "1")
    local, on_ray = rows(tmp_path / "local"), rows(tmp_path / "ray")
    assert len(local) == 3  # snip, random, and the dense baseline
    assert on_ray == local
    names = sorted(p.name for p in (tmp_path / "ray").iterdir() if p.is_dir())
    assert names == sorted(r["run"] for r in local)
    # Resume: every run is complete, so a second Ray sweep starts nothing (and needs no Ray).
    result = runner.invoke(app, [*sweep_args(recipe), "--out", str(tmp_path / "ray"), "--backend", "ray"])
    assert "3 already complete (skipped), 0 to run" in result.output


def test_shards_then_collect_equal_one_sweep(tiny_recipe_dict, write_recipe, tmp_path: Path) -> None:
    recipe = str(write_recipe(tiny_recipe_dict))
    sweep(recipe, tmp_path / "whole")
    sweep(recipe, tmp_path / "sharded", "--shard", "0/2")
    assert not (tmp_path / "sharded" / "sweep.csv").exists()
    early = runner.invoke(app, ["sweep", "--collect", str(tmp_path / "sharded")])
    assert early.exit_code == 2 and "1 of 3 runs not finished" in early.output
    sweep(recipe, tmp_path / "sharded", "--shard", "1/2")
    done = sorted(p.name for p in (tmp_path / "sharded").iterdir() if p.is_dir())
    assert len(done) == 3
    result = runner.invoke(app, ["sweep", "--collect", str(tmp_path / "sharded")])
    assert result.exit_code == 0, result.output
    assert rows(tmp_path / "sharded") == rows(tmp_path / "whole")


@pytest.mark.parametrize(
    ("text", "parsed"), [("0/1", (0, 1)), ("3/4", (3, 4)), ("4/4", None), ("-1/2", None), ("a/b", None)]
)
def test_parse_shard(text: str, parsed: tuple[int, int] | None) -> None:
    if parsed is None:
        with pytest.raises(UserError, match=r"^--shard"):
            parse_shard(text)
    else:
        assert parse_shard(text) == parsed


def test_backend_options_are_checked() -> None:
    with pytest.raises(UserError, match=r"^--backend 'slurm'"):
        make_backend("slurm", None, None, 1.0, 0.0)
    with pytest.raises(UserError, match=r"^--address/--gpus-per-run: only with --backend ray"):
        make_backend("local", "10.0.0.1:6379", None, 1.0, 0.0)
    assert make_backend("local", None, None, 1.0, 0.0).jobs == 1
