"""A run's verdict: broken files and failed gates are errors (exit 1); a lossy file over
`validate.max_accuracy_drop` is not an error, only not deployable.

`run` exits 0 when no file is broken, the recipe's `gates:` pass and, if `auto` was asked
for, a deploy file was chosen; otherwise 1. The last line of `run` says which.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from rich.console import Console

from paiexport.errors import UserError
from paiexport.export.variants import variants_for
from paiexport.recipe import Recipe
from paiexport.reporting.gates import evaluate_gates
from paiexport.reporting.schema import Gates, RunReport, needed


def check_gates_measurable(recipe: Recipe) -> None:
    """Gates the run could not measure are bad input, refused before any training."""
    gates, variants = recipe.gates, variants_for(recipe.export.formats)
    for batch in gates.max_latency_ms:
        if batch not in recipe.bench.batch_sizes:
            raise UserError(f"gates.max_latency_ms: batch size {batch} is not in bench.batch_sizes")
    for field, table in (("min_speedup", gates.min_speedup), ("max_size_mb", gates.max_size_mb)):
        for variant in table:
            if variant not in variants:
                raise UserError(f"gates.{field}: no variant {variant!r} in this run ({', '.join(variants)})")


def gates_section(recipe: Recipe, report: RunReport) -> Gates:
    """report.json `gates`: the recipe's gates evaluated on this run, as `paiexport check` does."""
    if recipe.gates.is_empty():
        return Gates(passed=True)
    try:
        results = evaluate_gates(recipe.gates, report)
    except UserError as exc:  # e.g. max_size_mb[deploy] when no deploy file was chosen
        return Gates(passed=False, error=str(exc))
    rows = [{**asdict(r), "line": r.line()} for r in results]
    return Gates(passed=all(r.passed for r in results), results=rows)


def run_verdict(report: RunReport) -> tuple[int, str]:
    """(exit code, the last line of `run`) from a report with `validation`, `deploy`, `gates`."""
    validation = report.validation
    broken = [f"{v} ({', '.join(c.broken_checks)})" for v, c in validation.items() if not c.passed]
    over = [
        f"{v} ({c.reason.removesuffix(': not deployable')})"
        for v, c in validation.items()
        if c.passed and not c.deployable
    ]
    gates = report.gates or Gates(passed=True)
    failed_gates = [r.gate for r in gates.results if not r.passed]
    deploy = report.deploy
    problems = []
    if broken:
        problems.append(f"broken: {', '.join(broken)}")
    if not gates.passed:
        problems.append(f"gates failed: {', '.join(failed_gates) or gates.error or ''}")
    if deploy is not None and deploy.variant is None:
        problems.append("no deployable file (every candidate broken or over validate.max_accuracy_drop)")
    if problems:
        return 1, "FAILED: " + "; ".join(problems)
    parts = ["no file broken"]
    if gates.results:
        parts.append(f"{len(gates.results)} gate(s) passed")
    if deploy is not None:
        parts.append(f"deploy: {deploy.variant}")
    if over:
        parts.append(f"not deployable: {', '.join(over)}")
    return 0, "OK: " + "; ".join(parts)


def print_verdict(console: Console, report: RunReport, run_dir: Path) -> int:
    """The last line of `run` (and of `api.run_recipe` with a console): the verdict, green or red,
    pointing at report.html; returns its exit code."""
    verdict = needed(report.verdict, "verdict")
    style = "red" if verdict.exit_code else "green"
    line = f"{verdict.line}  (see {run_dir / 'report.html'})"
    console.print(line, style=style, highlight=False, markup=False, soft_wrap=True)
    return verdict.exit_code
