"""`paiexport run`: recipe -> data + model -> masks -> training -> export -> validate -> bench -> report.

The stages themselves are `runs.stages` (up to the trained model) and `runs.ship` (the files);
this module wires them into a run folder and its report.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from torch import nn

from paiexport.bench.runtimes import make_runtimes
from paiexport.data import DataSplits
from paiexport.methods import FitResult, Method
from paiexport.paths import RunPaths
from paiexport.recipe import Recipe
from paiexport.reporting.assemble import RunFacts, RunOutcome, build_report
from paiexport.reporting.html import write_html_report
from paiexport.reporting.report import markdown
from paiexport.reporting.schema import RunReport, Verdict
from paiexport.runs.resume import drop_resumable, resume_dir
from paiexport.runs.ship import Shipped, ship
from paiexport.runs.stages import Timer, effective_sparsity, recipe_rules, select_and_train
from paiexport.runs.staging import staged_run_dir
from paiexport.runs.verdict import check_gates_measurable, gates_section, run_verdict
from paiexport.threads import torch_threads
from paiexport.training import distributed, stop
from paiexport.training.trackers import TrackerCallback


def finish_report(recipe: Recipe, report: RunReport, timer: Timer, start: float, paths: RunPaths) -> None:
    """The recipe's gates and the verdict (`run` gates a CI job in one command), then the files."""
    report.gates = gates_section(recipe, report)
    exit_code, line = run_verdict(report)
    report.verdict = Verdict(exit_code=exit_code, line=line)
    report.timings_s = {**timer.seconds, "total": round(time.perf_counter() - start, 3)}
    report.write(paths.report_json)
    paths.report_md.write_text(markdown(report))
    write_html_report(paths, report)


def tracked_figures(report: RunReport) -> dict[str, Any]:
    """What `train.log_to` trackers get once the run is done."""
    return {
        "accuracy": report.accuracy.model_dump(),
        "sparsity": report.sparsity.reached,
        "size_bytes": {v: s.model_dump() for v, s in report.size_bytes.items()},
    }


def assemble(
    recipe: Recipe, model: nn.Module, data: DataSplits, fit: FitResult, method: Method, shipped: Shipped
) -> RunReport:
    """report.json from what the stages produced (before the gates and the verdict); the
    per-layer targets are the method's own where it set them (`Method.layer_targets`)."""
    sparsity = effective_sparsity(recipe)
    facts = RunFacts(
        recipe=recipe.to_dict(),
        recipe_hash=recipe.digest(),
        method=recipe.method.name,
        epochs=recipe.train.epochs,
        sparsity=sparsity,
        layer_targets=method.layer_targets(model, sparsity),
    )
    outcome = RunOutcome(
        model=model,
        fit=fit,
        trains_weights=method.trains_weights,
        torch_accuracy=shipped.torch_accuracy,
        files=shipped.files,
        checks=shipped.checks,
        stats=shipped.stats,
        compact=shipped.compact,
        deploy=shipped.deploy,
        int8_used=shipped.int8_used,
        residual_sums=shipped.residual_sums,
        runtimes=shipped.runtimes,
        seq_latency=shipped.seq_latency,
        example=data.test.x,
        task=data.task,
        torch_metrics=shipped.torch_metrics,
    )
    return build_report(facts, outcome)


def run_recipe(
    recipe: Recipe,
    out_dir: Path,
    *,
    force: bool = False,
    console: Console | None = None,
    resume: bool = False,
) -> RunReport:
    """Run a recipe end to end; the finished run folder appears at `out_dir` atomically.

    `resume`: continue the interrupted run of `out_dir` (same recipe) if there is one.
    """
    console = console or Console(stderr=True)
    timer, start = Timer(console), time.perf_counter()
    check_gates_measurable(recipe)
    make_runtimes(recipe.bench.runtimes, "bench.runtimes")  # a runtime not installed: exit 2 now
    saved = resume_dir(out_dir, yaml.safe_load(yaml.safe_dump(recipe.to_dict()))) if resume else None
    if saved is not None:
        console.print(f"resuming the interrupted run in {saved}", highlight=False, markup=False)
    with stop.stop_on_signals(), staged_run_dir(out_dir, force, saved) as paths, ExitStack() as stack:
        if saved is None:  # a resumed run keeps the saved recipe.yaml (equal to this one)
            paths.recipe.write_text(yaml.safe_dump(recipe.to_dict(), sort_keys=False))
            for folder in recipe.search_folders():
                paths.recipe_folder.write_text(f"{folder}\n")
        trackers = (
            TrackerCallback(recipe.train.log_to, paths.root, recipe.name) if recipe.train.log_to else None
        )
        stack.enter_context(recipe_rules(recipe))
        model, data, fit, method = select_and_train(recipe, paths, timer, trackers)
        stack.enter_context(torch_threads(fit.train.threads))  # the report's figures too
        compacted = fit.train.compact  # train.compact: the trained model has no masks; the selection's
        selection = compacted["selection_sparsity"] if compacted else None
        shipped = ship(recipe, model, data, paths, timer, fit.train.threads, selection)
        report = assemble(recipe, model, data, fit, method, shipped)
        report.world_size = distributed.world_size()  # torchrun processes that trained the model
        finish_report(recipe, report, timer, start, paths)
        if trackers is not None:
            trackers.finish(tracked_figures(report))
    drop_resumable(out_dir)  # the published run supersedes any interrupted one
    return report
