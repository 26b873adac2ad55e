"""The commands that work on files: `bench`, `check`, `validate`, `inspect`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError

from paiexport.bench.settings import FileBenchSettings
from paiexport.cli import ShapeOption, TrustCodeOption, app, err, out, user_errors, wide_out
from paiexport.errors import UserError

if TYPE_CHECKING:
    from paiexport.reporting.gates import GateResult
    from paiexport.verify.file_checks import FileReport


GateRuntimeOption = Annotated[
    str, typer.Option("--runtime", help="Latency and speedup gates read this runtime's figures (openvino).")
]


SeqLensOption = Annotated[
    str | None,
    typer.Option("--seq-lens", help="Also time files with a sequence axis at these lengths: 32,128."),
]


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
    runtime: Annotated[
        str, typer.Option("--runtime", help="Comma-separated runtimes, e.g. onnxruntime,openvino.")
    ] = "onnxruntime",
    seq_lens: SeqLensOption = None,
) -> None:
    """Latency (p50/p90/p99, throughput), session creation, peak memory and size of ONNX files.

    Random inputs: floats standard normal, integers 0 or 1 (token ids: below the file's recorded
    vocabulary), bools random (paiexport/verify/inputs.py).
    """
    from paiexport.bench.latency import bench, bench_inputs, bench_table, file_table
    from paiexport.bench.runtime_latency import runtime_table
    from paiexport.bench.runtimes import make_runtimes
    from paiexport.bench.sequences import benchmark_seq_lens, with_sequence_shapes
    from paiexport.reporting.speed import seq_latency_rows, seq_table
    from paiexport.verify.inputs import plan_inputs

    with user_errors():
        settings = _bench_settings(batch_sizes, threads, warmup, iterations, shape, runtime, seq_lens)
        runtimes = make_runtimes(settings.runtimes, "--runtime")  # not installed: exit 2, before any work
        files, base = bench_inputs(models, baseline)
        if settings.seq_lens:  # sequence inputs without a --shape: the last length in the main table
            shapes = with_sequence_shapes(files, settings.shapes, settings.seq_lens[-1], "--seq-lens")
            settings = settings.model_copy(update={"shapes": shapes})
        plan_inputs(files, settings.batch_sizes, settings.shapes)  # bad inputs exit 2 before timing
        result = bench(files, base, settings, runtimes)
        by_seq = seq_latency_rows(benchmark_seq_lens(files, settings, settings.shapes), base)
        if json_out is not None:
            _write_bench_json(json_out, result.to_dict(), by_seq)
    console = wide_out()
    console.print(bench_table(result))
    console.print(file_table(result))
    if result.runtimes is not None:
        console.print(runtime_table(result.runtimes, result.baseline))
    if by_seq:
        console.print(seq_table(by_seq, base))


def _write_bench_json(path: Path, result: dict[str, Any], by_seq: list[Any]) -> None:
    """`bench --json`: the result, `latency_by_seq_len` with `--seq-lens`, the versions."""
    from paiexport.reporting.report import versions, write_json

    path.parent.mkdir(parents=True, exist_ok=True)
    extra = {"latency_by_seq_len": [r.model_dump() for r in by_seq]} if by_seq else {}
    write_json({**result, **extra, "versions": versions()}, path)


def _bench_settings(
    batch_sizes: str,
    threads: str,
    warmup: int,
    iterations: int,
    shape: list[str] | None,
    runtime: str,
    seq_lens: str | None = None,
) -> FileBenchSettings:
    """The options as the one settings type the recipe's `bench:` section uses too."""
    from paiexport.bench.latency import parse_positive_ints
    from paiexport.verify.inputs import parse_shapes

    try:
        return FileBenchSettings(
            batch_sizes=parse_positive_ints(batch_sizes, "--batch-sizes"),
            threads=parse_positive_ints(threads, "--threads"),
            warmup=warmup,
            iterations=iterations,
            shapes=parse_shapes(shape or []),
            runtimes=[part.strip() for part in runtime.split(",") if part.strip()],
            seq_lens=parse_positive_ints(seq_lens, "--seq-lens") if seq_lens else [],
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        option = {"runtimes": "--runtime"}.get(
            str(error["loc"][0]), "--" + str(error["loc"][0]).replace("_", "-")
        )
        raise UserError(f"{option}: {error['msg'].removeprefix('Value error, ')}") from None


def _gate_options(
    max_latency_ms: list[str] | None,
    min_speedup: list[str] | None,
    max_size_mb: list[str] | None,
    **numbers: Any,
) -> dict[str, Any]:
    """`check`'s options as a gates dict (only those given)."""
    from paiexport.reporting.gates import parse_pair

    options = {
        **numbers,
        "max_latency_ms": dict(parse_pair(t, "--max-latency-ms", int) for t in max_latency_ms or []),
        "min_speedup": dict(parse_pair(t, "--min-speedup", str) for t in min_speedup or []),
        "max_size_mb": dict(parse_pair(t, "--max-size-mb", str) for t in max_size_mb or []),
    }
    return {k: v for k, v in options.items() if v not in (None, {})}


MinMetricOption = Annotated[
    float | None,
    typer.Option("--min-metric", help="Every ONNX variant's primary metric ≥ X (≤ X when lower is better)."),
]
MaxMetricDropOption = Annotated[
    float | None,
    typer.Option(
        "--max-metric-drop", help="Every ONNX variant at most D worse than PyTorch (the task's unit)."
    ),
]


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
    runtime: GateRuntimeOption = "onnxruntime",
    min_metric: MinMetricOption = None,
    max_metric_drop: MaxMetricDropOption = None,
) -> None:
    """Check a run against gates (options and the recipe's gates: section); exit 1 if any fails."""
    from paiexport.reporting.gates import evaluate_gates, gates_from_dict, load_report, recipe_gates

    with user_errors():
        report = load_report(run_or_report)
        numbers = {"min_accuracy": min_accuracy, "max_accuracy_drop": max_accuracy_drop}
        numbers |= {
            "min_sparsity": min_sparsity,
            "min_metric": min_metric,
            "max_metric_drop": max_metric_drop,
        }
        options = _gate_options(max_latency_ms, min_speedup, max_size_mb, **numbers)
        cli_gates = gates_from_dict(options, "options")
        gates = recipe_gates(report, str(run_or_report)).merged(cli_gates)
        if gates.is_empty():
            raise UserError(
                "no gates: pass options such as --min-accuracy or add a gates: section to the recipe"
            )
        results = evaluate_gates(gates, report, runtime)
    raise typer.Exit(1 if _print_gate_results(results) else 0)


def _print_gate_results(results: list[GateResult]) -> int:
    """One line per gate, green or red, then the totals; the count of failed gates."""
    for r in results:
        out.print(r.line(), style="green" if r.passed else "red", highlight=False, markup=False)
    failed = sum(not r.passed for r in results)
    out.print(f"{len(results) - failed} passed, {failed} failed", highlight=False)
    return failed


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
    trust_code: Annotated[bool, TrustCodeOption] = False,
    task: Annotated[
        str | None,
        typer.Option(
            "--task", help="classification, regression, ... (default: the file's, else classification)."
        ),
    ] = None,
) -> None:
    """Checker, load, parity with a reference file, the task's metrics, sparsity per initializer.

    Exit 1 on a failed check."""
    from paiexport.runs.export import check_trusted, factory_modules
    from paiexport.verify.eval_data import validation_data
    from paiexport.verify.file_checks import check_file
    from paiexport.verify.inputs import parse_shapes

    with user_errors():
        cfg = validation_data(data, data_path, recipe)
        if data is None:  # the dataset a recipe file names, not one typed on the command line
            check_trusted(factory_modules(None, cfg.name), f"--recipe {recipe}", trust_code)
        shapes = parse_shapes(shape or [])
        report = check_file(model, cfg, reference, max_accuracy_drop, seed, shapes, task)
    _print_file_report(report)


def _print_file_report(report: FileReport) -> None:
    """One line per check and per weight; exit 1 when a check failed (a broken file)."""
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
