"""`paiexport sweep`: the Cartesian product of recipe values x seeds, one run folder each.

Every run is planned and validated before the first one starts (a bad grid value fails at
once). A run whose folder holds a report.json of the same recipe is complete and skipped, so
an interrupted sweep resumes where it stopped: runs are published atomically by
`staged_run_dir`, so a folder with a report is always a finished run. Each sweep also runs
the dense baseline once per seed (and per value of any other axis), so the accuracy of
every method and sparsity sits next to dense.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

from paiexport import recipe_yaml
from paiexport.errors import UserError, shorten
from paiexport.methods import BASELINE_METHOD, is_baseline
from paiexport.out_path import check_out_path
from paiexport.paths import recover_interrupted
from paiexport.recipe import Override, Recipe, apply_overrides, validate_recipe
from paiexport.reporting.schema import RunReport
from paiexport.reporting.sweep_report import OK
from paiexport.reporting.sweep_report import write_outputs as write_outputs  # the CLI's entry point
from paiexport.verdict import run_verdict

METHOD_KEY, TARGET_KEY, SEED_KEY = "method.name", "sparsity.target", "seed"


@dataclass(frozen=True)
class GridAxis:
    key: str  # dotted recipe field
    values: tuple[Any, ...]  # parsed as YAML, like --set


def parse_grid(text: str) -> GridAxis:
    """'method.name=snip,grasp' -> GridAxis('method.name', ('snip', 'grasp'))."""
    key, sep, values = text.partition("=")
    parts = [v.strip() for v in values.split(",")]
    if not sep or not key.strip() or not all(parts):
        raise UserError(f"--grid {text!r}: expected dotted.key=value1,value2,...")
    if key.strip() == SEED_KEY:
        raise UserError("--grid seed: use --seeds N instead")
    try:
        return GridAxis(key.strip(), tuple(recipe_yaml.safe_load(v) for v in parts))
    except recipe_yaml.RecipeYAMLError as exc:
        raise UserError(f"--grid {shorten(key)}: value refused: {exc}") from None
    except yaml.YAMLError:
        raise UserError(f"--grid {shorten(key)}: a value is not valid YAML") from None


@dataclass(frozen=True)
class PlannedRun:
    name: str  # folder name inside the sweep folder
    assignments: dict[str, Any]  # grid key -> value, and "seed"
    recipe: Recipe


def _folder_name(assignments: dict[str, Any]) -> str:
    """Readable and unique: when sanitizing changes the text (["out.*"] and ["out.?"] both
    become -out.---), a short hash of the exact values keeps the folders apart."""
    text = "__".join(f"{k}={v}" for k, v in assignments.items())
    name = "".join(c if c.isalnum() or c in "._=-" else "-" for c in text)
    if name != text:
        exact = json.dumps(list(assignments.items()), sort_keys=True, default=str).encode()
        name += "-" + hashlib.sha256(exact).hexdigest()[:8]
    return name


def _run_raw(base: dict[str, Any], assignments: dict[str, Any]) -> dict[str, Any]:
    raw = json.loads(json.dumps(base))
    method = assignments.get(METHOD_KEY)
    if method is not None and method != raw.get("method", {}).get("name"):
        raw["method"] = {"name": method}  # another method's options would be unknown fields
    return apply_overrides(raw, [Override(tuple(k.split(".")), v) for k, v in assignments.items()])


def plan_sweep(
    raw: dict[str, Any], source: str, grid: list[GridAxis], seeds: int, overrides: list[Override]
) -> list[PlannedRun]:
    """Every run of the sweep (grid x seeds, plus dense baselines), validated, in order."""
    keys = [axis.key for axis in grid]
    if len(set(keys)) != len(keys):
        raise UserError("--grid: the same key is given twice")
    base = apply_overrides(raw, overrides)
    first_seed = validate_recipe(base, source).seed
    combos = [dict(zip(keys, values, strict=True)) for values in itertools.product(*(a.values for a in grid))]
    dense = [{**{k: v for k, v in c.items() if k != TARGET_KEY}, METHOD_KEY: BASELINE_METHOD} for c in combos]
    if METHOD_KEY not in keys and is_baseline(base.get("method", {}).get("name")):
        dense = []  # every run already is the dense baseline
    planned: dict[str, PlannedRun] = {}
    for combo in [*combos, *dense]:
        if is_baseline(combo.get(METHOD_KEY, base.get("method", {}).get("name"))):
            combo = {k: v for k, v in combo.items() if k != TARGET_KEY}  # dense ignores the target
        for seed in range(first_seed, first_seed + seeds):
            assignments = {**combo, SEED_KEY: seed}
            name = _folder_name(assignments)
            if name in planned and planned[name].assignments != assignments:
                # Same text, different values (1 and "1"): one folder would hold both runs.
                raise UserError(f"--grid: two runs would share the folder {name}; make the values distinct")
            if name not in planned:
                recipe = validate_recipe(_run_raw(base, assignments), f"{source} [{name}]")
                planned[name] = PlannedRun(name, assignments, recipe)
    return list(planned.values())


def is_complete(run: PlannedRun, out_dir: Path) -> bool:
    """Finished with this very recipe; a folder with another recipe's report is an error."""
    report_path = out_dir / run.name / "report.json"
    if not report_path.is_file():
        return False
    try:
        found = json.loads(report_path.read_text()).get("recipe_hash")
    except (json.JSONDecodeError, OSError):
        return False
    if found != run.recipe.digest():
        raise UserError(
            f"{out_dir / run.name} holds a run of a different recipe; use another --out or remove that folder"
        )
    return True


def run_one(raw: dict[str, Any], folder: str, torch_threads: int | None, quiet: bool) -> str:
    """One run (in a worker process with --jobs > 1): the recipe, validated again, end to end."""
    import torch
    from rich.console import Console

    from paiexport.pipeline import run_recipe

    if torch_threads is not None:
        torch.set_num_threads(torch_threads)
    recipe = validate_recipe(raw, folder)
    # Parallel workers stay silent (progress bars of several processes would interleave).
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull) if quiet else nullcontext():
        # force: a run folder without this recipe's complete report is replaced atomically
        # (a folder that is no paiexport run is refused, never deleted).
        run_recipe(recipe, Path(folder), force=True, console=Console(stderr=True, quiet=quiet), resume=True)
    return folder


class Backend(Protocol):
    """Runs the runs of a sweep that are not complete yet (sweep_backends: local, ray)."""

    def run(self, todo: list[PlannedRun], out_dir: Path, progress: Callable[[str], None]) -> None: ...


def execute(
    runs: list[PlannedRun], out_dir: Path, backend: Backend, progress: Callable[[str], None] = print
) -> None:
    """Run what is not complete yet on `backend` (finished runs are skipped: resume)."""
    check_out_path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for line in recover_interrupted(out_dir):
        progress(line)
    todo = [r for r in runs if not is_complete(r, out_dir)]
    progress(f"{len(runs)} runs, {len(runs) - len(todo)} already complete (skipped), {len(todo)} to run")
    backend.run(todo, out_dir, progress)


# --- aggregation ------------------------------------------------------------------------------


def result_row(run: PlannedRun, report: RunReport) -> dict[str, Any]:
    """One CSV row: the grid values, then what the run measured and its verdict."""
    row: dict[str, Any] = {"run": run.name, **run.assignments}
    sparsity = report.require("sparsity")
    row.update(
        method=report.method,
        sparsity_target=sparsity.target,
        sparsity_reached=sparsity.reached,
        accuracy=report.require("accuracy").torch,
        train_seconds=report.require("training").seconds,
    )
    for variant, ratio in report.size_ratio_vs_dense.items():
        row[f"size_ratio_{variant}"] = ratio["raw"]
    # A report written before verdicts were recorded: the verdict its sections give.
    exit_code, line = (
        (report.verdict.exit_code, report.verdict.line) if report.verdict else run_verdict(report)
    )
    row["verdict"] = OK if exit_code == 0 else line
    return row


def collect(runs: list[PlannedRun], out_dir: Path) -> list[dict[str, Any]]:
    """The result rows of finished runs; a report lacking a section is an error naming it."""
    rows = []
    for run in runs:
        report = RunReport.read(out_dir / run.name)
        try:
            rows.append(result_row(run, report))
        except UserError as exc:
            raise UserError(f"{out_dir / run.name / 'report.json'}: {exc}") from None
    return rows


def extra_axes(grid: list[GridAxis]) -> list[str]:
    """Grid keys other than method and sparsity: they become part of a line's label."""
    return [a.key for a in grid if a.key not in (METHOD_KEY, TARGET_KEY)]
