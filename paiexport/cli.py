"""The command line: thin wiring from options to the library."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from paiexport.errors import UserError

app = typer.Typer(
    name="paiexport",
    help="Prune at initialization, train sparse, and ship validated, benchmarked ONNX files.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)


def wide_out() -> Console:
    """stdout; logs and pipes get 120 columns instead of rich's 80 so tables are not squeezed."""
    return out if out.is_terminal else Console(width=120)


ShapeOption = Annotated[
    list[str] | None,
    typer.Option(
        "--shape",
        help="NAME=1x3x32x32: full shape of an input with dynamic dimensions; the first number "
        "stands for the batch (repeatable).",
    ),
]


def show_version(value: bool) -> None:
    if value:
        from paiexport import __version__

        out.print(f"paiexport {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def main(
    _version: Annotated[
        bool,
        typer.Option(
            "--version", callback=show_version, is_eager=True, metavar="", help="Print the version."
        ),
    ] = False,
) -> None:
    """Prune at initialization, train sparse, and ship validated, benchmarked ONNX files."""


@contextmanager
def user_errors() -> Iterator[None]:
    """Bad input becomes one line on stderr and exit code 2, never a traceback."""
    try:
        yield
    except UserError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


@contextmanager
def resume_messages(target: Path, resume: bool, recipe: str, out_dir: Path | None) -> Iterator[None]:
    """Say when resumable state exists; Ctrl-C / SIGTERM: say how to resume, exit 130 / 143."""
    from paiexport.errors import Interrupted
    from paiexport.training.resumable import resume_hint

    hint = None if resume else resume_hint(target)
    if hint:
        err.print(hint, highlight=False, markup=False, soft_wrap=True)
    try:
        yield
    except KeyboardInterrupt as exc:
        signum = exc.signum if isinstance(exc, Interrupted) else 2
        again = f"paiexport run {recipe}" + (f" --out {out_dir}" if out_dir else "") + " --resume"
        err.print(
            f"interrupted; the checkpoint is kept: continue with `{again}`", highlight=False, markup=False
        )
        raise typer.Exit(128 + signum) from None


@app.command()
def run(
    recipe: Annotated[str, typer.Argument(help="Recipe YAML file, or the name of a bundled recipe.")],
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Output folder (default: models/<recipe name>).")
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a recipe field: dotted.key=value (repeatable)."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", metavar="", help="Replace an existing run folder (or empty folder).")
    ] = False,
    resume: Annotated[
        bool,
        typer.Option("--resume", metavar="", help="Continue the interrupted run of --out (same recipe)."),
    ] = False,
) -> None:
    """Select masks, train, export ONNX (every export.formats variant), validate, benchmark, report."""
    from paiexport.paths import default_run_dir, prepare_output
    from paiexport.pipeline import run_recipe
    from paiexport.ranks import start_ranks
    from paiexport.recipe import load_recipe, resolve_recipe_path
    from paiexport.reporting.report import summary_table

    with user_errors():
        parsed = load_recipe(resolve_recipe_path(recipe), overrides or [])
        if not start_ranks(parsed, resume):
            return  # a torchrun rank other than 0: it trained; rank 0 writes everything
        target = out_dir or default_run_dir(parsed.name)
        # Before any work; leftovers of killed runs are cleaned up and said so.
        prepare_output(target, force, lambda line: err.print(line, highlight=False, markup=False))
        with resume_messages(target, resume, recipe, out_dir):
            report = run_recipe(parsed, target, force=force, console=err, resume=resume)
    wide_out().print(summary_table(report))
    listed = ", ".join(["report.json", "report.md", "report.html", *report["files"].values()])
    out.print(f"run folder: {target}  ({listed})", highlight=False, soft_wrap=True)
    for line in report["gates"]["results"]:
        out.print(line["line"], style="green" if line["passed"] else "red", highlight=False, markup=False)
    verdict = report["verdict"]  # broken files or failed gates: written to look at, not to ship
    style = "red" if verdict["exit_code"] else "green"
    last = f"{verdict['line']}  (see {target / 'report.html'})"
    out.print(last, style=style, highlight=False, markup=False, soft_wrap=True)
    if verdict["exit_code"]:
        raise typer.Exit(verdict["exit_code"])


@app.command("recipes")
def list_recipes() -> None:
    """List the bundled recipes, one line each."""
    from paiexport.recipe import bundled_recipes_dir, load_recipe

    with user_errors():
        for path in sorted(bundled_recipes_dir().glob("*.yaml")):
            try:
                r = load_recipe(path)
            except UserError as exc:  # one broken recipe must not hide the others
                out.print(f"{path.stem:<20} (invalid: {exc})", highlight=False, soft_wrap=True)
                continue
            out.print(
                f"{path.stem:<20} {r.method.name:<10} sparsity {r.effective_target():.0%} "
                f"{r.sparsity.distribution.value:<8} {r.model.name} on {r.data.name}, "
                f"{r.train.epochs} epochs",
                highlight=False,
            )


@app.command("bench")
def bench_command(
    models: Annotated[list[Path], typer.Argument(help="ONNX files to benchmark side by side.")],
    baseline: Annotated[
        Path | None, typer.Option("--baseline", help="Ratios are to this file (default: the first file).")
    ] = None,
    batch_sizes: Annotated[str, typer.Option("--batch-sizes", help="Comma-separated, e.g. 1,8,64.")] = "1,64",
    threads: Annotated[str, typer.Option("--threads", help="Comma-separated thread counts, e.g. 1,2.")] = "1",
    iterations: Annotated[int, typer.Option("--iterations", min=1, help="Timed runs per setting.")] = 100,
    warmup: Annotated[int, typer.Option("--warmup", min=0, help="Untimed runs per setting.")] = 10,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the results as JSON.")] = None,
    shape: ShapeOption = None,
) -> None:
    """Latency (p50/p90/p99, throughput), session creation, peak memory and size of ONNX files.

    Random inputs: floats standard normal, integers 0 or 1, bools random (paiexport/verify/inputs.py).
    """
    from paiexport.bench.latency import (
        BenchSettings,
        bench,
        bench_inputs,
        bench_table,
        file_table,
        parse_positive_ints,
    )
    from paiexport.reporting.report import versions, write_json
    from paiexport.verify.inputs import parse_shapes, plan_inputs

    with user_errors():
        settings = BenchSettings(
            parse_positive_ints(batch_sizes, "--batch-sizes"),
            parse_positive_ints(threads, "--threads"),
            warmup,
            iterations,
            shapes=parse_shapes(shape or []),
        )
        files, base = bench_inputs(models, baseline)
        plan_inputs(files, settings.batch_sizes, settings.shapes)  # bad inputs exit 2 before timing
        result = bench(files, base, settings)
        if json_out is not None:
            json_out.parent.mkdir(parents=True, exist_ok=True)
            write_json({**result.to_dict(), "versions": versions()}, json_out)
    console = wide_out()
    console.print(bench_table(result))
    console.print(file_table(result))


@app.command("check")
def check_command(
    run_or_report: Annotated[Path, typer.Argument(help="A run folder or its report.json.")],
    min_accuracy: Annotated[
        float | None,
        typer.Option("--min-accuracy", help="Every ONNX variant's test accuracy ≥ X (0.9 = 90%)."),
    ] = None,
    max_accuracy_drop: Annotated[
        float | None,
        typer.Option(
            "--max-accuracy-drop", help="Every ONNX variant at most P points below PyTorch (1.0 = 1 point)."
        ),
    ] = None,
    max_latency_ms: Annotated[
        list[str] | None,
        typer.Option("--max-latency-ms", help="BATCH=MS: median latency of every variant (repeatable)."),
    ] = None,
    min_speedup: Annotated[
        list[str] | None, typer.Option("--min-speedup", help="VARIANT=R: speedup over dense (repeatable).")
    ] = None,
    max_size_mb: Annotated[
        list[str] | None, typer.Option("--max-size-mb", help="VARIANT=MB: file size (repeatable).")
    ] = None,
    min_sparsity: Annotated[
        float | None, typer.Option("--min-sparsity", help="Reached sparsity ≥ S (0.9 = 90%).")
    ] = None,
) -> None:
    """Check a run against gates (options and the recipe's gates: section); exit 1 if any fails."""
    from paiexport.reporting.gates import (
        evaluate_gates,
        gates_from_dict,
        load_report,
        parse_pair,
        recipe_gates,
    )

    with user_errors():
        report = load_report(run_or_report)
        options = {
            "min_accuracy": min_accuracy,
            "max_accuracy_drop": max_accuracy_drop,
            "max_latency_ms": dict(parse_pair(t, "--max-latency-ms", int) for t in max_latency_ms or []),
            "min_speedup": dict(parse_pair(t, "--min-speedup", str) for t in min_speedup or []),
            "max_size_mb": dict(parse_pair(t, "--max-size-mb", str) for t in max_size_mb or []),
            "min_sparsity": min_sparsity,
        }
        cli_gates = gates_from_dict({k: v for k, v in options.items() if v not in (None, {})}, "options")
        gates = recipe_gates(report, str(run_or_report)).merged(cli_gates)
        if gates.is_empty():
            raise UserError(
                "no gates: pass options such as --min-accuracy or add a gates: section to the recipe"
            )
        results = evaluate_gates(gates, report)
    for r in results:
        out.print(r.line(), style="green" if r.passed else "red", highlight=False, markup=False)
    failed = sum(not r.passed for r in results)
    out.print(f"{len(results) - failed} passed, {failed} failed", highlight=False)
    raise typer.Exit(1 if failed else 0)


@app.command("sweep")
def sweep_command(
    recipe: Annotated[
        str | None,
        typer.Argument(help="Recipe YAML file, or the name of a bundled recipe (not with --collect)."),
    ] = None,
    grid: Annotated[
        list[str] | None,
        typer.Option("--grid", help="dotted.key=v1,v2,...: one axis of the product (repeatable)."),
    ] = None,
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
    shard_text: Annotated[
        str | None, typer.Option("--shard", help="i/n: run only every n-th run, from the i-th (0-based).")
    ] = None,
    collect_dir: Annotated[
        Path | None,
        typer.Option("--collect", help="Aggregate the finished runs of a (sharded) sweep folder."),
    ] = None,
) -> None:
    """Run a grid of recipes x seeds (resumable), then write sweep.csv, sweep.md and sweep.png."""
    from paiexport.sweep_backends import collect_sweep, make_backend, run_sweep

    with user_errors():
        if collect_dir is not None:
            target = collect_sweep(collect_dir)
        elif recipe is None:
            raise UserError("sweep: give a RECIPE, or --collect DIR")
        else:
            runner = make_backend(backend, address, jobs, cpus, gpus)
            progress = lambda line: err.print(line, highlight=False, markup=False)  # noqa: E731
            target, complete = run_sweep(recipe, grid or [], seeds, overrides or [], out_dir, runner,
                                         shard_text, progress)  # fmt: skip
            if not complete:
                out.print(f"shard done in {target}; when every shard is: paiexport sweep --collect {target}")
                return
    out.print((target / "sweep.md").read_text(), highlight=False, markup=False)
    out.print(f"sweep folder: {target}  (sweep.csv, sweep.md, sweep.png, one folder per run)")


@app.command("export")
def export_cmd(
    source: Annotated[Path, typer.Argument(help="A run folder, or a checkpoint (.pt) inside one.")],
    formats: Annotated[
        list[str] | None,
        typer.Option("--formats", help="dense, sparse, compact, int8, auto (repeatable or comma-separated)."),
    ] = None,
    opset: Annotated[int | None, typer.Option("--opset", help="ONNX opset (17-21).")] = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Output folder (default: RUN/export).")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", metavar="", help="Replace an existing output folder.")
    ] = False,
) -> None:
    """Re-export a trained run's ONNX files without retraining; validates each file."""
    from paiexport.reexport import default_export_dir, locate_run, reexport

    overrides = []
    if formats:
        chosen = [f.strip() for item in formats for f in item.split(",") if f.strip()]
        overrides.append(f"export.formats=[{', '.join(chosen)}]")
    if opset is not None:
        overrides.append(f"export.opset={opset}")
    with user_errors():
        run = locate_run(source, overrides)
        result = reexport(run, out_dir or default_export_dir(run), err, force=force)
    failed = [v for v, c in result["validation"].items() if not c["passed"]]
    for variant, path in result["files"].items():
        c = result["validation"][variant]
        verdict = "pass" if c["passed"] else "FAIL"
        out.print(
            f"{variant:<14} {path}  acc {c['accuracy']:.2%}  {verdict}", highlight=False, soft_wrap=True
        )
    if failed:
        err.print(f"[red]validation failed:[/] {', '.join(failed)}")
        raise typer.Exit(1)


@app.command("validate")
def validate_cmd(
    model: Annotated[Path, typer.Argument(help="The ONNX file to check.")],
    data: Annotated[
        str | None, typer.Option("--data", help="Dataset whose test split is used (mnist1d, npz, ...).")
    ] = None,
    reference: Annotated[
        Path | None,
        typer.Option("--reference", help="An ONNX file the outputs must match (e.g. model.onnx)."),
    ] = None,
    max_accuracy_drop: Annotated[
        float, typer.Option("--max-accuracy-drop", help="Points an int8 file may lose vs the reference.")
    ] = 1.0,
    seed: Annotated[
        int | None,
        typer.Option("--seed", help="Seed of the test split (default: the file's paiexport.seed, else 0)."),
    ] = None,
    shape: ShapeOption = None,
    data_path: Annotated[
        str | None, typer.Option("--data-path", help="Folder or file of the dataset.")
    ] = None,
    recipe: Annotated[
        Path | None, typer.Option("--recipe", help="Take the data section of a run's recipe.yaml.")
    ] = None,
) -> None:
    """Checker, load, parity with a reference file, accuracy, sparsity per initializer; exit 1 on failure."""
    from paiexport.verify.eval_data import validation_data
    from paiexport.verify.file_checks import check_file
    from paiexport.verify.inputs import parse_shapes

    with user_errors():
        cfg = validation_data(data, data_path, recipe)
        report = check_file(model, cfg, reference, max_accuracy_drop, seed, parse_shapes(shape or []))
    for check in report.checks:
        mark = "[green]✓[/]" if check.ok else "[red]✗[/]"
        out.print(f"{mark} {check.name}: {check.detail}", soft_wrap=True)
    for name, sparsity in report.sparsity.items():
        out.print(f"  {name}: sparsity {sparsity:.2%}", highlight=False)
    failed = [c.name for c in report.checks if not c.ok]
    if failed:  # broken: exit 1; a lossy file over the limit is only not deployable (exit 0)
        err.print(f"[red]broken, failed check:[/] {', '.join(failed)}")
        raise typer.Exit(1)
    if report.not_deployable:
        out.print(f"[yellow]{report.not_deployable}[/] (no check failed)", highlight=False)


@app.command("inspect")
def inspect_cmd(
    model: Annotated[Path, typer.Argument(help="Any ONNX file.")],
    as_json: Annotated[bool, typer.Option("--json", metavar="", help="Print the findings as JSON.")] = False,
) -> None:
    """Initializers (shape, sparsity, storage, bytes), op counts, dense vs effective FLOPs, metadata."""
    import json

    from paiexport.verify.inspect import inspect_model, render

    with user_errors():
        found = inspect_model(model)
    if as_json:
        out.print_json(json.dumps(found))
    else:
        for renderable in render(found):  # names and shapes like [batch, 3] are not markup
            out.print(renderable, markup=False, highlight=False, soft_wrap=True)
