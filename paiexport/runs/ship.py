"""The stages after training: evaluate, export every variant, validate, benchmark, deploy.

`paiexport run` and `paiexport export` both call `ship`: the same metadata, the same files,
the same deploy choice from the same model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from paiexport.bench.deploy import Stats, write_deploy
from paiexport.bench.latency import benchmark_files
from paiexport.data import DataSplits
from paiexport.export.build import ExportedVariants, export_variants
from paiexport.export.metadata import input_normalization, task_metadata
from paiexport.export.variants import ExportFormat
from paiexport.paths import RunPaths
from paiexport.recipe import Recipe
from paiexport.runs.stages import Timer
from paiexport.sparsity.masks import overall_sparsity
from paiexport.tasks import Task
from paiexport.threads import torch_threads
from paiexport.training.loop import evaluate
from paiexport.variant import Variant
from paiexport.verify.validate import FileValidation, Judging
from paiexport.verify.variants import validate_variants


@dataclass
class Shipped:
    """What the stages after training produced: the files and their checks, stats, deploy choice."""

    torch_accuracy: float  # the task's primary metric of the PyTorch model (classification: accuracy)
    torch_metrics: dict[str, float]
    files: dict[Variant, Path]
    checks: dict[Variant, FileValidation]
    stats: Stats
    compact: dict[str, Any] | None  # what compaction did (`ExportedVariants.compact`)
    deploy: dict[str, Any] | None  # report.json `deploy`; None without `auto`
    int8_used: dict[str, Any] | None = None  # report.json `export.int8_used` (`ExportedVariants`)


def file_metadata(
    recipe: Recipe,
    model: nn.Module,
    data: DataSplits,
    torch_metrics: dict[str, float],
    selection: float | None,
) -> dict[str, str]:
    """`metadata_props` of every file: the recipe's keys and the inputs' normalization.

    `selection`: the selection's sparsity for `train.compact` runs, whose trained model has no
    masks; otherwise the sparsity is the model's own."""
    reached = overall_sparsity(model, recipe.sparsity.exclude) if selection is None else selection
    task_keys = task_metadata(data.task, torch_metrics)
    return {**recipe.metadata(reached, task_keys), **input_normalization(data.mean, data.std)}


def judging(recipe: Recipe, data: DataSplits) -> Judging:
    """The task, its baseline on this run's data and the int8 limit: how every file is judged."""
    task = data.task
    train_y = data.train.y if task.baseline_needs_train else data.test.y
    return Judging(task, task.baseline(train_y, data.test.y, data.num_classes), recipe.max_metric_drop(task))


def deploy_stage(
    recipe: Recipe,
    exported: ExportedVariants,
    stats: Stats,
    checks: dict[str, FileValidation],
    data_task: Task,
    paths: RunPaths,
) -> tuple[dict[str, Path], Stats, dict[str, FileValidation], dict[str, Any] | None]:
    """Files, stats and checks with `deploy` added when `auto` chose one; the `deploy` section."""
    if ExportFormat.auto not in recipe.export.formats:
        return exported.files, stats, checks, None
    drop = recipe.max_metric_drop(data_task)
    done = write_deploy(exported.files, stats, checks, drop, paths.onnx(Variant.deploy))
    if done.file is None:
        return exported.files, stats, checks, done.section
    files = {**exported.files, Variant.deploy: done.file}
    return files, {**stats, Variant.deploy: done.stats}, {**checks, Variant.deploy: done.check}, done.section


def ship(
    recipe: Recipe,
    model: nn.Module,
    data: DataSplits,
    paths: RunPaths,
    timer: Timer,
    threads: int,
    selection: float | None = None,
    *,
    bench: bool = True,
) -> Shipped:
    """Evaluate the trained `model` (masks baked in), then export, validate, benchmark and deploy
    into `paths`, with `threads` torch threads (int8 calibration included).

    `bench=False` benchmarks only what the deploy choice needs (nothing without `auto`)."""
    with torch_threads(threads):
        _, torch_metrics = evaluate(model, data.test, task=data.task)
        metadata = file_metadata(recipe, model, data, torch_metrics, selection)
        formats = ", ".join(f.value for f in recipe.export.formats)
        with timer.stage("export", f"exporting ONNX ({formats})"):
            exported = export_variants(model, recipe.export, data, paths, metadata)
        with timer.stage("validate", "validating ONNX files"):
            checks = validate_variants(exported.files, model, data.test, judging(recipe, data))
        stats: Stats = {}
        if bench or ExportFormat.auto in recipe.export.formats:
            with timer.stage("bench", "benchmarking in onnxruntime"):
                stats = benchmark_files(exported.files, recipe.bench)
        files, stats, checks, deploy = deploy_stage(recipe, exported, stats, checks, data.task, paths)
    torch_metric = torch_metrics[data.task.primary]
    return Shipped(
        torch_metric, torch_metrics, files, checks, stats, exported.compact, deploy, exported.int8_used
    )
