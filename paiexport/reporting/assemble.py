"""A run's `RunReport` from what its stages produced (the pipeline only hands them over)."""

from __future__ import annotations

from dataclasses import dataclass, field
from math import prod
from pathlib import Path
from typing import Any

import torch
from torch import nn

from paiexport import __version__
from paiexport.bench.deploy import Stats
from paiexport.bench.latency import LatencyStats, file_size
from paiexport.bench.runtime_checks import RuntimeOutcome
from paiexport.methods import FitResult
from paiexport.reporting.report import (
    SPARSE_STORAGE_NOTE,
    UNTRAINED_WEIGHTS_NOTE,
    latency_sections,
    machine,
    size_ratios,
    versions,
)
from paiexport.reporting.runtimes import runtime_sections
from paiexport.reporting.schema import RunReport
from paiexport.reporting.speed import WallCpuRatio, seq_latency_rows
from paiexport.sparsity.allocation import layer_keep_counts
from paiexport.sparsity.collapse import find_collapse
from paiexport.sparsity.masks import layer_sparsity, overall_sparsity, prunable_weights
from paiexport.sparsity.structure import structure_notes
from paiexport.sparsity.types import Distribution, LayerTargets, SparsityConfig, StructureKind
from paiexport.tasks import Task, make_task
from paiexport.training.compact import TRAIN_COMPACT_NOTE
from paiexport.variant import Variant
from paiexport.verify.validate import FileValidation, onnx_weight_sparsity


@dataclass(kw_only=True)
class RunFacts:
    """What the recipe says about the run: its dict and hash, method, epochs and the sparsity
    it asked for (`sparsity.target` already the effective one: 0 for dense)."""

    recipe: dict[str, Any]
    recipe_hash: str
    method: str
    epochs: int
    sparsity: SparsityConfig
    layer_targets: LayerTargets | None = None  # `Method.layer_targets`: set by the method, not `sparsity`


@dataclass(kw_only=True)
class RunOutcome:
    """What the stages produced: the masked model, the fit, and the files with their checks."""

    model: nn.Module
    fit: FitResult
    trains_weights: bool
    torch_accuracy: float  # the task's primary metric (classification: accuracy)
    files: dict[str, Path]
    checks: dict[str, FileValidation]
    stats: Stats
    compact: dict[str, Any] | None = None
    deploy: dict[str, Any] | None = None
    int8_used: dict[str, Any] | None = None  # `ExportedVariants.int8_used`
    residual_sums: int = 0  # `ExportedVariants.residual_sums`
    runtimes: RuntimeOutcome | None = None  # bench.runtimes besides onnxruntime (None: it alone)
    seq_latency: dict[int, dict[str, dict[int, dict[int, LatencyStats]]]] = field(default_factory=dict)
    example: torch.Tensor | None = None  # a sample batch: the channel graph is traced on it
    task: Task = field(default_factory=make_task)
    torch_metrics: dict[str, float] = field(default_factory=dict)


def planned_layer_sparsity(
    weights: dict[str, torch.Tensor], sparsity: SparsityConfig
) -> dict[str, float | None]:
    """Per-layer target implied by the distribution (global and structured selection have none)."""
    if sparsity.distribution is Distribution.global_ or sparsity.structure is not StructureKind.unstructured:
        return {n: None for n in weights}
    shapes = {n: tuple(w.shape) for n, w in weights.items()}
    keep = layer_keep_counts(shapes, sparsity.target, sparsity.distribution)
    return {n: 1.0 - keep[n] / prod(shapes[n]) for n in weights}


def sparsity_section(
    model: nn.Module,
    sparsity: SparsityConfig,
    files: dict[str, Path],
    targets: LayerTargets | None = None,
) -> dict[str, Any]:
    """report.json `sparsity`; `targets` (the method's own, e.g. gmp groups) replace the
    recipe's target and the per-layer targets its distribution implies."""
    reached = layer_sparsity(model, sparsity.exclude)
    weights = prunable_weights(model, sparsity.exclude)
    if targets is None:
        target, distribution = sparsity.target, sparsity.distribution.value
        planned = planned_layer_sparsity(weights, sparsity)
    else:
        target, distribution, planned = targets.target, targets.distribution, targets.per_layer
    in_files = {v: onnx_weight_sparsity(p, list(weights)) for v, p in files.items()}
    per_layer = {
        n: {
            "numel": w.numel(),
            "target": planned[n],
            "reached": reached[n],
            "onnx": {v: found.get(n) for v, found in in_files.items()},
        }
        for n, w in weights.items()
    }
    return {
        "target": target,
        "reached": overall_sparsity(model, sparsity.exclude),
        "distribution": distribution,
        "per_layer": per_layer,
    }


def training_section(facts: RunFacts, fit: FitResult) -> dict[str, Any]:
    result = fit.train
    return {
        "epochs": facts.epochs,
        "seconds": round(result.seconds, 3),
        "best_epoch": result.best_epoch,
        "exported_epoch": result.exported_epoch,
        "threads": result.threads,
        "final": result.history[-1].to_dict() if result.history else None,
    }


def task_sections(run: RunOutcome) -> dict[str, Any]:
    """report.json `task` and `metrics`; classification keeps its `accuracy` section."""
    task = run.task
    baseline = next((c.baseline for c in run.checks.values()), None)
    sections: dict[str, Any] = {
        "task": {**task.describe(), "baseline": baseline},
        "metrics": {"torch": run.torch_metrics, "onnx": {v: c.metrics for v, c in run.checks.items()}},
    }
    if task.name == "classification":
        sections["accuracy"] = {
            "torch": run.torch_accuracy,
            "onnx": {v: c.metric for v, c in run.checks.items()},
        }
    return sections


def validation_section(checks: dict[str, FileValidation], runtimes: RuntimeOutcome | None) -> dict[str, Any]:
    """report.json `validation`: each file's checks, and its checks in the other runtimes."""
    section = {v: c.to_dict() for v, c in checks.items()}
    for runtime, checks in (runtimes.checks if runtimes else {}).items():
        for v, check in checks.items():
            section[v].setdefault("runtimes", {})[runtime] = check.to_dict()
    return section


def export_section(run: RunOutcome) -> dict[str, Any] | None:
    """report.json `export`: the int8 choice and the residual sums; None when neither applies."""
    if run.int8_used is None and not run.residual_sums:
        return None
    return {"int8_used": run.int8_used, "residual_sums": run.residual_sums}


def build_report(facts: RunFacts, run: RunOutcome) -> RunReport:
    """report.json's content but `gates`, `verdict` and `timings_s`, which come after it."""
    sizes = {v: file_size(p) for v, p in run.files.items()}
    weights = prunable_weights(run.model, facts.sparsity.exclude)
    untrained = [] if run.trains_weights else [UNTRAINED_WEIGHTS_NOTE]
    structure = structure_notes(run.model, facts.sparsity, weights, run.example)
    sparse = [SPARSE_STORAGE_NOTE] if Variant.sparse in run.files else []  # only beside that file
    notes = [*sparse, *untrained, *structure, *run.fit.notes]
    report = RunReport(
        paiexport_version=__version__,
        recipe=facts.recipe,
        recipe_hash=facts.recipe_hash,
        method=facts.method,
        weights_trained=run.trains_weights,
        **task_sections(run),
        sparsity=sparsity_section(run.model, facts.sparsity, run.files, facts.layer_targets),
        layer_collapse=find_collapse({n: w != 0 for n, w in weights.items()}),
        validation=validation_section(run.checks, run.runtimes),
        runtimes=None if run.runtimes is None else runtime_sections(run.runtimes),
        **latency_sections(run.stats),
        latency_by_seq_len=seq_latency_rows(run.seq_latency, Variant.dense) if run.seq_latency else None,
        size_bytes=sizes,
        size_ratio_vs_dense=size_ratios(sizes),
        files={v: p.name for v, p in run.files.items()},
        training=training_section(facts, run.fit),
        compact=run.compact,
        export=export_section(run),
        deploy=run.deploy,
        notes=notes,
        train_compact=run.fit.train.compact,
        versions=versions(),
        machine=machine(),
        method_details=run.fit.details,
    )
    if run.runtimes is not None and run.runtimes.latency.stats:
        busy = run.runtimes.latency.busy().to_dict()  # wall vs CPU in every runtime of the run
        report.busy, report.wall_cpu_ratio = busy["busy"], WallCpuRatio(**busy["wall_cpu_ratio"])
    if report.train_compact is not None:  # the small model has no masks: report the selection's
        report.sparsity.reached = report.train_compact["selection_sparsity"]
        report.notes.append(TRAIN_COMPACT_NOTE)
    return report
