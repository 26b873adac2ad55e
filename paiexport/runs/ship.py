"""The stages after training: evaluate, export every variant, validate, benchmark, deploy.

`paiexport run` and `paiexport export` both call `ship`: the same metadata, the same files,
the same deploy choice from the same model.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from paiexport.bench.deploy import Stats, write_deploy
from paiexport.bench.runtime_checks import (
    RuntimeCheck,
    RuntimeOutcome,
    check_in_runtimes,
    runtime_validations,
)
from paiexport.bench.runtime_latency import RuntimeLatency, benchmark_runtimes
from paiexport.bench.runtimes import DEFAULT_RUNTIME, Runtime, make_runtimes
from paiexport.bench.sequences import SeqLatency, benchmark_seq_lens
from paiexport.data import DataSplits
from paiexport.export.build import export_variants
from paiexport.export.metadata import input_normalization, task_metadata
from paiexport.export.variants import ExportFormat
from paiexport.inputs import feeds, input_names, is_integer, several
from paiexport.paths import RunPaths
from paiexport.recipe import Recipe
from paiexport.runs.stages import Timer
from paiexport.sparsity.masks import overall_sparsity
from paiexport.tasks import Task
from paiexport.threads import torch_threads
from paiexport.training.loop import evaluate
from paiexport.variant import Variant
from paiexport.verify.validate import FileValidation, Judging, picked, torch_outputs
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
    runtimes: RuntimeOutcome | None = None  # None: bench.runtimes is onnxruntime alone
    seq_latency: SeqLatency = dataclasses.field(default_factory=dict)  # bench.seq_lens
    residual_sums: int = 0  # report.json `export.residual_sums` (`ExportedVariants`)


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


@dataclass
class Checked:
    """The files with their onnxruntime stats and checks, and what other runtimes measured."""

    files: dict[Variant, Path]
    stats: Stats
    checks: dict[str, FileValidation]
    runtimes: RuntimeOutcome


def validate_stage(
    recipe: Recipe, files: dict[Variant, Path], model: nn.Module, data: DataSplits, runtimes: list[Runtime]
) -> tuple[dict[Variant, FileValidation], dict[str, dict[str, RuntimeCheck]]]:
    """Every file validated in onnxruntime (the run's `validation`) and in each other runtime."""
    reference = torch_outputs(model, data.test.x)  # one forward pass serves every file and runtime
    checks = validate_variants(files, model, data.test, judging(recipe, data), reference=reference)
    picked_output = picked(data.task, reference)
    return checks, check_in_runtimes(runtimes, files, checks, data.test, picked_output, data.task)


def data_shapes(model: nn.Module, data: DataSplits) -> dict[str, tuple[int, ...]]:
    """Each ONNX input's shape in the data, for models whose inputs are token ids or several
    tensors: an axis left dynamic in the file (a sequence) is benchmarked at the data's length.
    One float input needs none (its file fixes every axis but the batch)."""
    example = data.example(1)
    if not (several(example) or is_integer(example)):
        return {}
    names = input_names(model, example)
    return {n: tuple(a.shape) for n, a in feeds(names, example).items()}


def bench_stage(
    recipe: Recipe,
    files: dict[Variant, Path],
    runtimes: list[Runtime],
    bench: bool,
    timer: Timer,
    shapes: dict[str, tuple[int, ...]] | None = None,
) -> RuntimeLatency:
    """Every file timed in every runtime; with `bench=False` only what `auto` needs (onnxruntime,
    and `export.deploy_runtime`), nothing without `auto`."""
    if not bench and ExportFormat.auto not in recipe.export.formats:
        return RuntimeLatency()
    needed = (DEFAULT_RUNTIME, recipe.export.deploy_runtime)
    timed = [r for r in runtimes if bench or r.name in needed]
    with timer.stage("bench", f"benchmarking in {', '.join(r.name for r in timed)}"):
        return benchmark_runtimes(files, recipe.bench, timed, shapes)


def seq_len_stage(
    recipe: Recipe, files: dict[Variant, Path], bench: bool, timer: Timer, shapes: dict[str, tuple[int, ...]]
) -> SeqLatency:
    """`bench.seq_lens`: every file at each length, when the files have a sequence axis."""
    if not bench or not recipe.bench.seq_lens:
        return {}
    lengths = ", ".join(map(str, recipe.bench.seq_lens))
    with timer.stage("bench_seq_lens", f"benchmarking at sequence lengths {lengths}"):
        return benchmark_seq_lens(files, recipe.bench, shapes)


def deploy_stage(
    recipe: Recipe, checked: Checked, data_task: Task, paths: RunPaths
) -> tuple[Checked, dict[str, Any] | None]:
    """The files, stats and checks with `deploy` added when `auto` chose one; the `deploy` section.

    `auto` picks in `export.deploy_runtime`: from its timings and its checks."""
    if ExportFormat.auto not in recipe.export.formats:
        return checked, None
    runtime, drop = recipe.export.deploy_runtime, recipe.max_metric_drop(data_task)
    stats, checks = checked.stats, checked.checks
    if runtime != DEFAULT_RUNTIME:
        stats = checked.runtimes.latency.stats.get(runtime, {})
        checks = runtime_validations(checked.runtimes.checks[runtime])
    done = write_deploy(checked.files, stats, checks, drop, paths.onnx(Variant.deploy), runtime)
    if done.file is None or done.chosen is None:
        return checked, done.section
    chosen, deploy = done.chosen, Variant.deploy
    return Checked(
        {**checked.files, deploy: done.file},
        {**checked.stats, deploy: checked.stats[chosen]} if chosen in checked.stats else checked.stats,
        {**checked.checks, deploy: dataclasses.replace(checked.checks[chosen], variant=deploy)},
        checked.runtimes.with_copy(chosen, deploy),
    ), done.section


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
    runtimes = make_runtimes(recipe.bench.runtimes, "bench.runtimes")
    with torch_threads(threads):
        _, torch_metrics = evaluate(model, data.test, task=data.task)
        metadata = file_metadata(recipe, model, data, torch_metrics, selection)
        formats = ", ".join(f.value for f in recipe.export.formats)
        with timer.stage("export", f"exporting ONNX ({formats})"):
            exported = export_variants(model, recipe.export, data, paths, metadata)
        with timer.stage("validate", "validating ONNX files"):
            checks, runtime_checks = validate_stage(recipe, exported.files, model, data, runtimes)
        shapes = data_shapes(model, data)
        latency = bench_stage(recipe, exported.files, runtimes, bench, timer, shapes)
        by_seq = seq_len_stage(recipe, exported.files, bench, timer, shapes)
        stats = latency.stats.get(DEFAULT_RUNTIME, {})
        info = {r.name: r.info() for r in runtimes if r.name in runtime_checks}
        measured = Checked(exported.files, stats, checks, RuntimeOutcome(latency, runtime_checks, info))
        done, deploy = deploy_stage(recipe, measured, data.task, paths)
    torch_metric = torch_metrics[data.task.primary]
    return Shipped(
        torch_metric,
        torch_metrics,
        done.files,
        done.checks,
        done.stats,
        exported.compact,
        deploy,
        exported.int8_used,
        done.runtimes if runtime_checks else None,
        by_seq,
        exported.residual_sums,
    )
