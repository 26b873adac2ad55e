"""A sweep end to end: plan, run what is not complete yet (resume), write sweep.csv/md/png.

A run whose folder holds this recipe's report is skipped, so an interrupted sweep resumes
where it stopped. `execute` decides what to run and hands the rest to a backend. With
`--shard i/n` each shard runs its part and writes the plan to sweep.json;
`paiexport sweep --collect DIR` then aggregates the finished runs of all shards.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from paiexport.out_path import check_out_path
from paiexport.paths import default_run_dir
from paiexport.recipe import Override, read_recipe_file, resolve_recipe_path
from paiexport.reporting.sweep_report import write_outputs
from paiexport.runs.staging import recover_interrupted
from paiexport.sweep.backends import Backend, LocalBackend, Progress, RayBackend
from paiexport.sweep.collect import collect, is_complete
from paiexport.sweep.plan import PlannedRun, extra_axes, parse_grid, parse_shard, plan_sweep, shard
from paiexport.sweep.plan_file import read_plan, write_plan


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


def run_sweep(
    recipe: str,
    grid: list[str],
    seeds: int,
    overrides: list[Override],
    out_dir: Path | None,
    backend: LocalBackend | RayBackend,
    shard_text: str | None,
    progress: Progress,
) -> tuple[Path, list[dict[str, Any]] | None]:
    """Plan, run (this shard's part of) the sweep; the folder and its result rows (None: a shard)."""
    index, count = parse_shard(shard_text) if shard_text else (0, 1)
    path = resolve_recipe_path(recipe)
    axes = [parse_grid(text) for text in grid]
    runs = plan_sweep(read_recipe_file(path), str(path), axes, seeds, overrides)
    target = out_dir or default_run_dir(f"{runs[0].recipe.name}-sweep")
    title = f"{runs[0].recipe.name} sweep ({seeds} seed{'s' if seeds > 1 else ''})"
    check_out_path(target)  # before sweep.json is written
    write_plan(runs, extra_axes(axes), title, target)
    if count > 1:
        progress(f"shard {index}/{count}: {len(shard(runs, index, count))} of {len(runs)} runs")
    execute(shard(runs, index, count), target, backend, progress)
    if count > 1:
        return target, None  # the other shards may still be running: aggregate with --collect
    rows = collect(runs, target)
    write_outputs(rows, extra_axes(axes), target, title)
    return target, rows


def collect_sweep(out_dir: Path) -> list[dict[str, Any]]:
    """`--collect DIR`: sweep.csv, sweep.md and sweep.png over the finished runs of every shard."""
    runs, extra_keys, title = read_plan(out_dir)
    rows = collect(runs, out_dir)
    write_outputs(rows, extra_keys, out_dir, title)
    return rows
