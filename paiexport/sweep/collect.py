"""The results of a sweep's runs: whether a run is complete, and one CSV row per run.

A run whose folder holds a report.json of the same recipe is complete: runs are published
atomically by `staged_run_dir`, so a folder with a report is always a finished run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from paiexport.errors import UserError
from paiexport.reporting.schema import RunReport, needed
from paiexport.reporting.sweep_report import OK
from paiexport.runs.verdict import run_verdict
from paiexport.sweep.plan import PlannedRun


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


def result_row(run: PlannedRun, report: RunReport) -> dict[str, Any]:
    """One CSV row: the grid values, then what the run measured and its verdict."""
    row: dict[str, Any] = {"run": run.name, **run.assignments}
    sparsity = needed(report.sparsity, "sparsity")
    row.update(
        method=report.method,
        sparsity_target=sparsity.target,
        sparsity_reached=sparsity.reached,
    )
    name, _ = report.primary
    row[name] = report.torch_metric  # classification: `accuracy`, as sweep.csv always had
    row["train_seconds"] = needed(report.training, "training").seconds
    if report.task is not None and report.task.name != "classification":
        row.update(metric=name, metric_percent=report.task.percent)
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
