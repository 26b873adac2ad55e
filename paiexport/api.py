"""The Python API, for notebooks and scripts: the recipe's stages on your own model and datasets.

    from paiexport.api import Recipe, run_recipe
    report = run_recipe("recipe.yaml", "runs/mine", model=my_net, datasets=(train_set, test_set))

`model` is any `nn.Module` (it is trained in place); `datasets` are torch `Dataset`s of `(x, y)`
pairs. Both replace the recipe's `model:` / `data:` names for this run only. `task` replaces its
`task:` section: a name (`"regression"`), a section (`{"name": "regression", "loss": "huber"}`)
or a custom task whose loss and metrics are plain callables:

    run_recipe(..., task={"name": "custom", "loss": my_loss, "metrics": {"mae": my_mae},
                          "primary": "mae", "higher_is_better": False})

A run that finishes is returned even when it failed (a broken file, a failed gate, no deployable
file: what makes `paiexport run` exit 1): check `report.ok` (or `report.verdict.line`) before
shipping its files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from torch import nn
from torch.utils.data import Dataset

from paiexport.importing import register
from paiexport.recipe import Override, Recipe, apply_overrides, load_recipe, validate_recipe
from paiexport.reporting.schema import RunReport
from paiexport.runs import pipeline
from paiexport.runs.verdict import print_verdict
from paiexport.tasks import TaskConfig

__all__ = ["Recipe", "RunReport", "load_recipe", "run_recipe"]


def _as_recipe(recipe: Recipe | dict[str, Any] | str | Path, overrides: list[Override]) -> Recipe:
    if isinstance(recipe, Recipe):
        return (
            validate_recipe(apply_overrides(recipe.to_dict(), overrides), "recipe") if overrides else recipe
        )
    if isinstance(recipe, dict):
        return validate_recipe(apply_overrides(recipe, overrides), "recipe")
    return load_recipe(Path(recipe), overrides)


def run_recipe(
    recipe: Recipe | dict[str, Any] | str | Path,
    out_dir: str | Path,
    *,
    model: nn.Module | None = None,
    datasets: tuple[Dataset, Dataset] | None = None,
    overrides: dict[str, Any] | None = None,
    task: str | dict[str, Any] | TaskConfig | None = None,
    force: bool = False,
    console: Console | None = None,
) -> RunReport:
    """Run a recipe end to end (like `paiexport run`) and return its typed report.json.

    No exception when the run fails its verdict: callers must check `report.ok` (exit code 0
    of `report.verdict`). With a `console`, the run's progress and, last, the verdict line that
    `paiexport run` ends with are printed on it. `overrides`: `{"train.epochs": 1}`, Python
    values (no YAML text to parse).
    """
    typed = [Override(tuple(key.split(".")), value) for key, value in (overrides or {}).items()]
    spec = _as_recipe(recipe, typed)
    raw = spec.to_dict()
    if model is not None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch nn.Module, got {type(model).__name__}")
        raw["model"] = {"name": register(lambda: model), "args": {}}
    if datasets is not None:
        train, test = datasets
        raw["data"]["name"] = register(lambda: (train, test))
        raw["data"]["path"] = None
    if task is not None:
        raw["task"] = _task_section(task)
    final = validate_recipe(raw, "recipe") if raw != spec.to_dict() else spec
    final._folder = spec._folder
    report = pipeline.run_recipe(final, Path(out_dir), force=force, console=console)
    if console is not None:
        print_verdict(console, report, Path(out_dir))
    return report


def _task_section(task: str | dict[str, Any] | TaskConfig) -> dict[str, Any]:
    """The recipe's `task:` section for `task`; callables (a custom task's loss, metrics and
    baseline) are registered in this process like `model` and `datasets`."""
    if isinstance(task, str):
        return {"name": task}
    if isinstance(task, TaskConfig):
        return task.model_dump(mode="json")
    if not isinstance(task, dict):
        raise TypeError(f"task must be a name, a dict or a TaskConfig, got {type(task).__name__}")
    section = dict(task)
    for key in ("loss", "baseline"):
        if callable(section.get(key)):
            section[key] = register(section[key])
    if isinstance(section.get("metrics"), dict):
        section["metrics"] = {k: register(v) if callable(v) else v for k, v in section["metrics"].items()}
    return section
