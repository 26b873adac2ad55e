"""Where the runs of a sweep execute: here (`local`, a process pool) or on Ray (`ray`).

`sweep.execute` decides what to run (planning, resume: a run folder with this recipe's
report is skipped) and hands the rest to a backend; every backend runs `sweep.run_one`, so
the folder layout and sweep.csv are the same whichever runs them. `--shard i/n` keeps every
n-th run (job arrays on Slurm-like schedulers); each shard writes the plan to sweep.json, and
`paiexport sweep --collect DIR` aggregates the finished runs of all shards.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from paiexport import recipe_yaml
from paiexport.errors import UserError
from paiexport.out_path import check_out_path
from paiexport.recipe import Override, validate_recipe
from paiexport.sweep import PlannedRun, is_complete, run_one

Progress = Callable[[str], None]
PLAN_FILE = "sweep.json"


@dataclass
class LocalBackend:
    """`jobs` runs at a time on this machine, in separate processes if jobs > 1."""

    jobs: int = 1

    def run(self, todo: list[PlannedRun], out_dir: Path, progress: Progress) -> None:
        if self.jobs == 1:
            for i, run in enumerate(todo, 1):
                progress(f"[{i}/{len(todo)}] {run.name}")
                run_one(run.recipe.to_dict(), str(out_dir / run.name), None, quiet=False)
            return
        # Processes share the CPU: split torch's threads so jobs do not oversubscribe the cores.
        threads = max(1, (os.cpu_count() or 1) // self.jobs)
        pool = ProcessPoolExecutor(max_workers=self.jobs, mp_context=get_context("spawn"))
        try:
            futures = {
                pool.submit(run_one, r.recipe.to_dict(), str(out_dir / r.name), threads, True): r
                for r in todo
            }
            for i, future in enumerate(as_completed(futures), 1):
                future.result()
                progress(f"[{i}/{len(todo)}] done {futures[future].name}")
        except BaseException:
            # Ctrl-C or a failed run: start nothing new; finished runs stay and a rerun resumes.
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()


@dataclass
class RayBackend:
    """Every run a Ray task with `cpus_per_run` CPUs and `gpus_per_run` GPUs.

    Without `address` the command starts a local Ray instance (and stops it at the end);
    with one it joins that cluster, whose workers need paiexport installed. `jobs` caps the
    runs in flight (default: as many as the cluster's resources admit).
    """

    address: str | None = None
    jobs: int | None = None
    cpus_per_run: float = 1.0
    gpus_per_run: float = 0.0

    def run(self, todo: list[PlannedRun], out_dir: Path, progress: Progress) -> None:
        if not todo:
            return  # everything complete: no need to start or join Ray
        try:
            import ray
        except ImportError:
            raise UserError("--backend ray: ray is not installed (pip install 'paiexport[ray]')") from None
        ray.init(address=self.address, include_dashboard=False, log_to_driver=False)
        try:
            self._run(ray, todo, out_dir, progress)
        finally:
            ray.shutdown()  # disconnects from a cluster; stops the instance this command started

    def _run(self, ray: Any, todo: list[PlannedRun], out_dir: Path, progress: Progress) -> None:
        task = ray.remote(num_cpus=self.cpus_per_run, num_gpus=self.gpus_per_run, max_retries=0)(run_one)
        threads = max(1, int(self.cpus_per_run))
        waiting, running, names, done = list(todo), [], {}, 0
        while waiting or running:
            while waiting and (self.jobs is None or len(running) < self.jobs):
                run = waiting.pop(0)
                ref = task.remote(run.recipe.to_dict(), str(out_dir / run.name), threads, True)
                running.append(ref)
                names[ref] = run.name
            finished, running = ray.wait(running, num_returns=1)
            try:
                ray.get(finished[0])
            except ray.exceptions.RayTaskError as exc:
                for ref in running:  # a failed run: cancel the rest; a rerun resumes
                    ray.cancel(ref)
                raise exc.cause if isinstance(exc.cause, UserError) else exc from None
            done += 1
            progress(f"[{done}/{len(todo)}] done {names[finished[0]]}")


def parse_shard(text: str) -> tuple[int, int]:
    """'1/4' -> (1, 4): the runs whose position modulo 4 is 1 (counting from 0)."""
    index, sep, count = text.partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        i, n = -1, 0
    if not sep or n < 1 or not 0 <= i < n:
        raise UserError(f"--shard {text!r}: expected i/n with 0 <= i < n, e.g. 0/4")
    return i, n


def shard(runs: list[PlannedRun], index: int, count: int) -> list[PlannedRun]:
    return runs[index::count]


def write_plan(runs: list[PlannedRun], extra_keys: list[str], title: str, out_dir: Path) -> None:
    """sweep.json: every run of the whole sweep (all shards), for `--collect`."""
    plan = {
        "title": title,
        "extra_keys": extra_keys,
        "runs": [{"name": r.name, "assignments": r.assignments} for r in runs],
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / PLAN_FILE).write_text(json.dumps(plan, indent=1) + "\n")


def read_plan(out_dir: Path) -> tuple[list[PlannedRun], list[str], str]:
    """The planned runs of a sweep folder (recipes read back from the run folders)."""
    path = out_dir / PLAN_FILE
    if not path.is_file():
        raise UserError(f"--collect {out_dir}: no {PLAN_FILE} (not a sweep folder)")
    try:
        plan = json.loads(path.read_text())
        entries, extra_keys, title = plan["runs"], plan["extra_keys"], plan["title"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise UserError(f"{path}: not a sweep plan written by paiexport sweep") from None
    missing = [e["name"] for e in entries if not (out_dir / e["name"] / "report.json").is_file()]
    if missing:
        listed = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
        raise UserError(
            f"--collect {out_dir}: {len(missing)} of {len(entries)} runs not finished ({listed}); "
            "run the missing shards first"
        )
    runs = []
    for e in entries:
        staged = out_dir / e["name"] / "recipe.yaml"
        raw = recipe_yaml.load_recipe_text(staged.read_text(), staged)  # the folder is the user's
        run = PlannedRun(e["name"], e["assignments"], validate_recipe(raw, str(out_dir / e["name"])))
        is_complete(run, out_dir)  # a folder holding another recipe's report is an error
        runs.append(run)
    return runs, extra_keys, title


def make_backend(
    name: str, address: str | None, jobs: int | None, cpus_per_run: float, gpus_per_run: float
) -> LocalBackend | RayBackend:
    """The backend of `--backend` with its options; ray-only options are refused on local."""
    if name == "local":
        if address is not None or gpus_per_run:
            raise UserError("--address/--gpus-per-run: only with --backend ray")
        return LocalBackend(jobs or 1)
    if name == "ray":
        return RayBackend(address, jobs, cpus_per_run, gpus_per_run)
    raise UserError(f"--backend {name!r}: choose local or ray")


def run_sweep(
    recipe: str, grid: list[str], seeds: int, overrides: list[Override], out_dir: Path | None,
    backend: LocalBackend | RayBackend, shard_text: str | None, progress: Progress,
) -> tuple[Path, bool]:  # fmt: skip
    """Plan, run (this shard's part of) the sweep; returns the folder and whether it is aggregated."""
    from paiexport.paths import default_run_dir
    from paiexport.recipe import read_recipe_file, resolve_recipe_path
    from paiexport.sweep import collect, execute, extra_axes, parse_grid, plan_sweep, write_outputs

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
        return target, False  # the other shards may still be running: aggregate with --collect
    write_outputs(collect(runs, target), extra_axes(axes), target, title)
    return target, True


def collect_sweep(out_dir: Path) -> Path:
    """`--collect DIR`: sweep.csv, sweep.md and sweep.png over the finished runs of every shard."""
    from paiexport.sweep import collect, write_outputs

    runs, extra_keys, title = read_plan(out_dir)
    write_outputs(collect(runs, out_dir), extra_keys, out_dir, title)
    return out_dir
