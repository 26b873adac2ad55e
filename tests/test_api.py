"""api.py: `run_recipe` for notebooks and scripts: your model and datasets, a typed report back."""

from __future__ import annotations

import io

import pytest
import torch
import yaml
from rich.console import Console
from torch import nn
from torch.utils.data import TensorDataset

import paiexport.runs.pipeline
from paiexport.api import run_recipe
from paiexport.errors import UserError
from paiexport.importing import import_callable
from paiexport.recipe import validate_recipe
from paiexport.reporting.schema import RunReport

BENCH = {"batch_sizes": [1], "threads": [1], "warmup": 0, "iterations": 3}


@pytest.fixture
def handed(monkeypatch) -> list[dict]:
    """What `run_recipe` hands the pipeline (which does not run): the recipe, folder, options."""
    calls: list[dict] = []

    def fake(recipe, out_dir, *, force=False, console=None):
        calls.append({"recipe": recipe, "out_dir": out_dir, "force": force})
        return RunReport.from_dict({"verdict": {"exit_code": 0, "line": "OK: no file broken"}})

    monkeypatch.setattr(paiexport.runs.pipeline, "run_recipe", fake)
    return calls


def test_a_recipe_file_with_overrides_reaches_the_pipeline_typed(
    handed, tiny_recipe_dict, write_recipe, tmp_path
):
    path = write_recipe(tiny_recipe_dict)
    report = run_recipe(
        str(path), tmp_path / "run", overrides={"train.epochs": 1, "sparsity.target": 0.5}, force=True
    )
    assert report.ok and len(handed) == 1
    recipe = handed[0]["recipe"]
    assert (recipe.train.epochs, recipe.sparsity.target) == (1, 0.5)
    assert recipe.search_folders() == [tmp_path]  # factories and data.path are looked up beside the file
    assert (handed[0]["out_dir"], handed[0]["force"]) == (tmp_path / "run", True)


def test_a_recipe_object_is_handed_on_as_it_is_unless_overridden(handed, tiny_recipe_dict, tmp_path):
    recipe = validate_recipe(tiny_recipe_dict, "tiny")
    run_recipe(recipe, tmp_path / "a")
    run_recipe(recipe, tmp_path / "b", overrides={"seed": 3})
    assert handed[0]["recipe"] is recipe
    assert handed[1]["recipe"].seed == 3 and recipe.seed == 0  # a new recipe, the given one unchanged


def test_your_model_and_datasets_replace_the_recipes_names(handed, tiny_recipe_dict, write_recipe, tmp_path):
    net = nn.Sequential(nn.Flatten(), nn.Linear(40, 4))
    train, test = (
        TensorDataset(torch.zeros(4, 40), torch.zeros(4)),
        TensorDataset(torch.zeros(2, 40), torch.zeros(2)),
    )
    tiny_recipe_dict["data"]["path"] = "somewhere"
    run_recipe(str(write_recipe(tiny_recipe_dict)), tmp_path / "run", model=net, datasets=(train, test))
    recipe = handed[0]["recipe"]
    assert import_callable(recipe.model.name, [], "model.name")() is net and recipe.model.args == {}
    assert import_callable(recipe.data.name, [], "data.name")() == (train, test) and recipe.data.path is None
    assert recipe.search_folders() == [tmp_path]  # kept when the recipe is validated again


def test_bad_arguments_are_refused_before_the_pipeline_runs(handed, tiny_recipe_dict, tmp_path):
    with pytest.raises(TypeError, match=r"^model must be a torch nn\.Module, got dict$"):
        run_recipe(tiny_recipe_dict, tmp_path / "run", model={"name": "mlp"})
    with pytest.raises(UserError, match=r"sparsity\.target"):
        run_recipe(tiny_recipe_dict, tmp_path / "run", overrides={"sparsity.target": 2})
    assert handed == [] and not (tmp_path / "run").exists()


def all_pass(report: RunReport) -> bool:
    """Every file passes every check, the chance level included."""
    checks = report.validation.values()
    return bool(checks) and all(c.passed and not c.broken_checks for c in checks)


def test_python_api_takes_a_module_and_datasets(tmp_path, tiny_recipe_dict):
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(300, 6, generator=gen), torch.arange(300) % 3
    x[torch.arange(300), y] += 4.0  # learnable: the label's feature is large
    net = nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 3))
    tiny_recipe_dict["bench"] = BENCH
    datasets = TensorDataset(x[:225], y[:225]), TensorDataset(x[225:], y[225:])
    report = run_recipe(tiny_recipe_dict, tmp_path / "run", model=net, datasets=datasets)
    assert all_pass(report) and report.sparsity.reached == pytest.approx(0.8, abs=0.02)
    assert float((net[0].weight == 0).float().mean()) > 0.5  # the very module given was pruned and trained
    saved = yaml.safe_load((tmp_path / "run" / "recipe.yaml").read_text())
    assert saved["model"]["name"].startswith("paiexport.importing:registered_")


def test_python_api_reports_a_failed_verdict_and_prints_the_cli_last_line(tmp_path, tiny_recipe_dict):
    tiny_recipe_dict.update(bench=BENCH, gates={"min_sparsity": 0.9})  # reaches 0.8: the gate fails
    tiny_recipe_dict["export"]["formats"] = ["dense"]
    buffer = io.StringIO()
    console = Console(file=buffer, width=400, color_system=None)
    report = run_recipe(tiny_recipe_dict, tmp_path / "run", overrides={"train.epochs": 1}, console=console)
    assert report.ok is False and report.verdict.exit_code == 1
    last = buffer.getvalue().strip().splitlines()[-1]
    assert last == f"FAILED: gates failed: min_sparsity  (see {tmp_path / 'run' / 'report.html'})"
    # the very line `paiexport run` ends with (test_verdicts.py pins the CLI's)
    report.verdict.exit_code = 0
    assert report.ok


def linear_targets(n: int, seed: int) -> TensorDataset:
    """y = x·w + 3 with a little noise: a regression an MLP learns in a few dozen steps."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    w = torch.tensor([1.5, -2.0, 0.5, 0.0, 1.0, -0.5])
    return TensorDataset(x, x @ w + 3 + 0.1 * torch.randn(n, generator=g))


def test_a_regression_through_the_api_is_trained_and_judged_in_r2(tmp_path, tiny_recipe_dict):
    recipe = {**tiny_recipe_dict, "bench": BENCH}
    recipe["train"] = {**recipe["train"], "optimizer": {"name": "adam", "lr": 0.01}, "epochs": 6}
    recipe["export"] = {"formats": ["dense", "int8"]}
    screen = io.StringIO()
    report = run_recipe(
        recipe,
        tmp_path / "run",
        datasets=(linear_targets(512, 0), linear_targets(128, 1)),
        task="regression",
        console=Console(file=screen, width=200),
    )
    assert report.task.name == "regression" and report.primary == ("r2", True)
    assert set(report.metrics.torch) == {"r2", "mae", "rmse"} and report.accuracy is None
    assert report.schema_version == 3
    assert report.torch_metric > 0.5 and report.ok  # learned: far above the training mean's R² (≈ 0)
    assert report.validation["dense"].metric == pytest.approx(report.torch_metric, abs=1e-4)
    assert "val r2" in screen.getvalue() and "val acc" not in screen.getvalue()
    assert screen.getvalue().rstrip().splitlines()[-1].startswith("OK: ")


def test_a_task_object_or_callables_become_the_recipes_task_section(handed, tiny_recipe_dict, tmp_path):
    from paiexport.tasks.regression import RegressionConfig

    run_recipe(tiny_recipe_dict, tmp_path / "a", task=RegressionConfig(loss="huber"))
    assert handed[-1]["recipe"].task.loss == "huber"
    with pytest.raises(TypeError, match="task must be"):
        run_recipe(tiny_recipe_dict, tmp_path / "b", task=3)
