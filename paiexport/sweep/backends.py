"""Where the runs of a sweep execute: here (`local`, a process pool) or on Ray (`ray`).

Every backend runs `run_one` for each run it is given, so the folder layout and sweep.csv
are the same whichever runs them.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import nullcontext
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Protocol

from paiexport.errors import UserError
from paiexport.recipe import validate_recipe
from paiexport.sweep.plan import PlannedRun

Progress = Callable[[str], None]


def run_one(raw: dict[str, Any], folder: str, torch_threads: int | None, quiet: bool) -> str:
    """One run (in a worker process with --jobs > 1): the recipe, validated again, end to end."""
    import torch
    from rich.console import Console

    from paiexport.runs.pipeline import run_recipe

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
    """Runs the runs of a sweep that are not complete yet (local, ray)."""

    def run(self, todo: list[PlannedRun], out_dir: Path, progress: Callable[[str], None]) -> None: ...


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
