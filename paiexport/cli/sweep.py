"""`paiexport sweep`: a grid of runs x seeds on the local or the Ray backend, sharded or not."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from paiexport.cli import app, err, out, user_errors
from paiexport.errors import UserError

RecipeArg = Annotated[
    str | None,
    typer.Argument(help="Recipe YAML file, or the name of a bundled recipe (not with --collect)."),
]
GridOption = Annotated[
    list[str] | None,
    typer.Option("--grid", help="dotted.key=v1,v2,...: one axis of the product (repeatable)."),
]
ShardOption = Annotated[
    str | None, typer.Option("--shard", help="i/n: run only every n-th run, from the i-th (0-based).")
]
CollectOption = Annotated[
    Path | None,
    typer.Option("--collect", help="Aggregate the finished runs of a (sharded) sweep folder."),
]


@app.command("sweep")
def sweep_command(
    recipe: RecipeArg = None,
    grid: GridOption = None,
    seeds: Annotated[int, typer.Option("--seeds", min=1, help="Seeds per point: seed, seed+1, ...")] = 1,
    jobs: Annotated[
        int | None, typer.Option("--jobs", min=1, help="Runs in parallel (local: 1; ray: all that fit).")
    ] = None,
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="Override a field of every run: dotted.key=value.")
    ] = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Sweep folder (default: models/<recipe name>-sweep).")
    ] = None,
    backend: Annotated[str, typer.Option("--backend", help="local (process pool) or ray.")] = "local",
    address: Annotated[
        str | None, typer.Option("--address", help="Ray cluster address (default: start a local Ray).")
    ] = None,
    cpus: Annotated[float, typer.Option("--cpus-per-run", min=0.0, help="Ray: CPUs per run.")] = 1.0,
    gpus: Annotated[float, typer.Option("--gpus-per-run", min=0.0, help="Ray: GPUs per run.")] = 0.0,
    shard_text: ShardOption = None,
    collect_dir: CollectOption = None,
) -> None:
    """Run a grid of recipes x seeds (resumable), then write sweep.csv, sweep.md and sweep.png."""
    from paiexport.cli.overrides import parse_overrides
    from paiexport.reporting.sweep_report import failed_runs
    from paiexport.sweep import collect_sweep, make_backend, run_sweep

    with user_errors():
        if collect_dir is not None:
            target, rows = collect_dir, collect_sweep(collect_dir)
        elif recipe is None:
            raise UserError("sweep: give a RECIPE, or --collect DIR")
        else:
            runner = make_backend(backend, address, jobs, cpus, gpus)
            progress = lambda line: err.print(line, highlight=False, markup=False)  # noqa: E731
            sets = parse_overrides(overrides)
            target, rows = run_sweep(recipe, grid or [], seeds, sets, out_dir, runner, shard_text, progress)
            if rows is None:
                line = f"shard done in {target}; when every shard is: paiexport sweep --collect {target}"
                out.print(line, highlight=False, markup=False, soft_wrap=True)  # a path, then a command
                return
    out.print((target / "sweep.md").read_text(), highlight=False, markup=False)
    line = f"sweep folder: {target}  (sweep.csv, sweep.md, sweep.png, one folder per run)"
    out.print(line, highlight=False, markup=False, soft_wrap=True)
    report_failures(failed_runs(rows), len(rows))


def report_failures(failed: list[tuple[str, str]], total: int) -> None:
    """The failed runs, named last (the others finished and are in sweep.csv); exit 1 if any."""
    if not failed:
        return
    for run, line in failed:
        out.print(f"{run}: {line}", style="red", highlight=False, markup=False, soft_wrap=True)
    out.print(f"FAILED: {len(failed)} of {total} runs", style="red", highlight=False, markup=False)
    raise typer.Exit(1)
