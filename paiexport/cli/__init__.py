"""The command line: thin wiring from options to the library."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from paiexport.errors import DiskFull, UserError

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


TrustCodeOption = typer.Option(
    "--trust-code",
    metavar="",
    help="Import and run the model/data factory code the run's recipe names (only for code you trust).",
)


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
    """Bad input becomes one line on stderr and exit code 2, never a traceback; a full disk, exit 1."""
    try:
        yield
    except (UserError, DiskFull) as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2 if isinstance(exc, UserError) else 1) from None


@contextmanager
def resume_messages(target: Path, resume: bool, recipe: str, out_dir: Path | None) -> Iterator[None]:
    """Say when resumable state exists; Ctrl-C / SIGTERM: say how to resume, exit 130 / 143."""
    from paiexport.errors import Interrupted
    from paiexport.runs.resume import resumable_runs, resume_hint

    hint = None if resume else resume_hint(target)
    if hint:
        err.print(hint, highlight=False, markup=False, soft_wrap=True)
    try:
        yield
    except KeyboardInterrupt as exc:
        signum = exc.signum if isinstance(exc, Interrupted) else 2
        again = f"paiexport run {recipe}" + (f" --out {out_dir}" if out_dir else "") + " --resume"
        kept = f"the checkpoint is kept: continue with `{again}`"
        line = f"interrupted; {kept if resumable_runs(target) else 'nothing was trained yet, nothing kept'}"
        err.print(line, highlight=False, markup=False)
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
    from paiexport.cli.overrides import parse_overrides
    from paiexport.paths import default_run_dir
    from paiexport.recipe import load_recipe, resolve_recipe_path
    from paiexport.reporting.report import summary_table
    from paiexport.reporting.schema import needed
    from paiexport.runs.pipeline import run_recipe
    from paiexport.runs.ranks import start_ranks
    from paiexport.runs.staging import prepare_output
    from paiexport.runs.verdict import print_verdict

    with user_errors():
        parsed = load_recipe(resolve_recipe_path(recipe), parse_overrides(overrides))
        if not start_ranks(parsed, resume):
            return  # a torchrun rank other than 0: it trained; rank 0 writes everything
        target = out_dir or default_run_dir(parsed.name)
        # Before any work; leftovers of killed runs are cleaned up and said so.
        prepare_output(target, force, lambda line: err.print(line, highlight=False, markup=False))
        with resume_messages(target, resume, recipe, out_dir):
            report = run_recipe(parsed, target, force=force, console=err, resume=resume)
    wide_out().print(summary_table(report))
    listed = ", ".join(["report.json", "report.md", "report.html", *report.files.values()])
    out.print(f"run folder: {target}  ({listed})", highlight=False, soft_wrap=True)
    for gate in needed(report.gates, "gates").results:
        out.print(gate.line, style="green" if gate.passed else "red", highlight=False, markup=False)
    exit_code = print_verdict(out, report, target)  # broken files, failed gates: not to ship
    if exit_code:
        raise typer.Exit(exit_code)


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
    trust_code: Annotated[bool, TrustCodeOption] = False,
) -> None:
    """Re-export a trained run's ONNX files without retraining; validates each file."""
    from paiexport.recipe import Override
    from paiexport.runs.export import default_export_dir, locate_run, reexport

    overrides = []
    if formats:
        chosen = [f.strip() for item in formats for f in item.split(",") if f.strip()]
        overrides.append(Override(("export", "formats"), chosen))
    if opset is not None:
        overrides.append(Override(("export", "opset"), opset))
    with user_errors():
        run = locate_run(source, overrides, trust_code)
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


# The file commands (bench, check, validate, inspect) and `recipes` register themselves on `app`.
from paiexport.cli import files, recipes, sweep  # noqa: E402, F401
