"""The command line: thin wiring from options to the library."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

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


@contextmanager
def user_errors() -> Iterator[None]:
    """Bad input becomes one line on stderr and exit code 2, never a traceback."""
    try:
        yield
    except UserError as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


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
    force: Annotated[bool, typer.Option("--force", help="Replace an existing output folder.")] = False,
) -> None:
    """Select masks, train, export ONNX (every export.formats variant), validate, benchmark, report."""
    from paiexport.paths import check_writable, default_run_dir
    from paiexport.pipeline import run_recipe
    from paiexport.recipe import load_recipe, resolve_recipe_path
    from paiexport.report import summary_table

    with user_errors():
        parsed = load_recipe(resolve_recipe_path(recipe), overrides or [])
        target = out_dir or default_run_dir(parsed.name)
        check_writable(target, force)
        report = run_recipe(parsed, target, force=force, console=err)
    out.print(summary_table(report))
    out.print(f"run folder: {target}  (report.json, report.md, {', '.join(report['files'].values())})")


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
                f"{r.sparsity.distribution.value:<8} {r.model.name.value} on {r.data.name.value}, "
                f"{r.train.epochs} epochs",
                highlight=False,
            )


@app.command("export")
def export_cmd(
    source: Annotated[Path, typer.Argument(help="A run folder, or a checkpoint (.pt) inside one.")],
    formats: Annotated[
        list[str] | None,
        typer.Option("--formats", help="dense, sparse, compact, int8, auto (repeatable or comma-separated)."),
    ] = None,
    opset: Annotated[int | None, typer.Option("--opset", help="ONNX opset (17-21).")] = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Output folder (default: the run folder).")
    ] = None,
) -> None:
    """Re-export a trained run's ONNX files without retraining; validates each file."""
    from paiexport.reexport import locate_run, reexport

    overrides = []
    if formats:
        chosen = [f.strip() for item in formats for f in item.split(",") if f.strip()]
        overrides.append(f"export.formats=[{', '.join(chosen)}]")
    if opset is not None:
        overrides.append(f"export.opset={opset}")
    with user_errors():
        run = locate_run(source, overrides)
        result = reexport(run, out_dir or run.root, err)
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
    data: Annotated[str, typer.Option("--data", help="Dataset whose test split is used: digits, mnist1d.")],
    reference: Annotated[
        Path | None,
        typer.Option("--reference", help="An ONNX file the outputs must match (e.g. model.onnx)."),
    ] = None,
    max_accuracy_drop: Annotated[
        float, typer.Option("--max-accuracy-drop", help="Points an int8 file may lose vs the reference.")
    ] = 1.0,
) -> None:
    """Checker, load, parity with a reference file, accuracy, sparsity per initializer; exit 1 on failure."""
    from paiexport.file_checks import check_file

    with user_errors():
        report = check_file(model, data, reference, max_accuracy_drop)
    for check in report.checks:
        mark = "[green]✓[/]" if check.ok else "[red]✗[/]"
        out.print(f"{mark} {check.name}: {check.detail}", soft_wrap=True)
    for name, sparsity in report.sparsity.items():
        out.print(f"  {name}: sparsity {sparsity:.2%}", highlight=False)
    failed = [c.name for c in report.checks if not c.ok]
    if failed:
        err.print(f"[red]failed check:[/] {', '.join(failed)}")
        raise typer.Exit(1)


@app.command("inspect")
def inspect_cmd(
    model: Annotated[Path, typer.Argument(help="Any ONNX file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the findings as JSON.")] = False,
) -> None:
    """Initializers (shape, sparsity, storage, bytes), op counts, dense vs effective FLOPs, metadata."""
    import json

    from paiexport.onnx_inspect import inspect_model, render

    with user_errors():
        found = inspect_model(model)
    if as_json:
        out.print_json(json.dumps(found))
    else:
        for renderable in render(found):
            out.print(renderable)
