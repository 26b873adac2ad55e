"""The runs of a sweep: grid x seeds plus dense baselines, unique folders, bad grids refused up front."""

import pytest
from typer.testing import CliRunner

from paiexport.cli import app
from paiexport.cli.overrides import parse_overrides
from paiexport.errors import UserError
from paiexport.sweep.plan import GridAxis, parse_grid, plan_sweep

runner = CliRunner()


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
