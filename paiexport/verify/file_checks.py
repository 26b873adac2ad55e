"""`paiexport validate`: checks on one ONNX file against a dataset and, optionally, a reference file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import torch

from paiexport.data import DataConfig
from paiexport.errors import UserError, first_line, shorten
from paiexport.tasks import TASKS, Task, task_by_name
from paiexport.tasks.classification import chance_level
from paiexport.verify.checks import is_quantized, make_session, open_checked, stored_zeros
from paiexport.verify.eval_data import eval_splits, validation_data
from paiexport.verify.inputs import check_data_shape, data_input, graph_inputs
from paiexport.verify.inspect import load_model
from paiexport.verify.rules import (
    PARITY_ATOL,
    accuracies_match,
    accuracy_drop_points,
    over_limit_reason,
    parity_diff,
    within_drop_limit,
    within_parity,
)
from paiexport.verify.validate import accuracy, run_session, task_metrics

DATASET_KEY = "paiexport.dataset"  # set by deploy.run_metadata
TASK_KEY = "paiexport.task"  # set for tasks other than classification (export.metadata.task_metadata)


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class FileReport:
    checks: list[Check] = field(default_factory=list)
    sparsity: dict[str, float] = field(default_factory=dict)
    not_deployable: str | None = None  # a lossy file over the accuracy limit: not an error


def _logits(path: Path, x: np.ndarray) -> np.ndarray:
    return run_session(make_session(path), x)


def split_seed(model: onnx.ModelProto, seed: int | None) -> int:
    """The seed that made the run's test split: given, else the file's `paiexport.seed`, else 0."""
    if seed is not None:
        return seed
    stored = {p.key: p.value for p in model.metadata_props}.get("paiexport.seed", "0")
    return int(stored) if stored.lstrip("-").isdigit() else 0


def _check_dataset(model: onnx.ModelProto, path: Path, data: str) -> None:
    """`--data` must be the dataset the file records (`paiexport.dataset`); foreign files have none."""
    recorded = {p.key: p.value for p in model.metadata_props}.get(DATASET_KEY)
    if recorded is not None and recorded != data:
        raise UserError(f"--data {data}: {path} was trained on {recorded}, not {data}")


def file_task(model: onnx.ModelProto, name: str | None) -> Task:
    """`--task NAME`, else the task the file records (`paiexport.task`), else classification."""
    recorded = {p.key: p.value for p in model.metadata_props}.get(TASK_KEY)
    chosen = name or recorded or "classification"
    if chosen not in TASKS or chosen == "custom":
        known = ", ".join(t for t in TASKS if t != "custom")
        raise UserError(f"--task {shorten(chosen)}: not a built-in task ({known})")
    task = task_by_name(chosen)
    restore = getattr(task, "restore", None)
    if callable(restore):  # regression's recorded target standardization
        restore({p.key.removeprefix("paiexport."): p.value for p in model.metadata_props})
    return task


def check_file(
    path: Path,
    data: str | DataConfig,
    reference: Path | None,
    max_accuracy_drop: float,
    seed: int | None = None,
    shapes: dict[str, tuple[int, ...]] | None = None,
    task: str | None = None,
) -> FileReport:
    """checker, load, input shape, parity (or the metric for int8) vs `reference`, the task's metrics."""
    model = load_model(path)
    judge = file_task(model, task)
    if reference is not None:
        load_model(reference)
    cfg = data if isinstance(data, DataConfig) else validation_data(data)
    data = cfg.name
    _check_dataset(model, path, data)
    name = data_input(graph_inputs(model, str(path)), shapes or {}, str(path))
    report = FileReport(
        sparsity={n: s.sparsity for n, s in stored_zeros(model, str(path)).items() if s.ndim >= 2}
    )
    test, train_y = eval_splits(model, cfg, split_seed(model, seed), judge)
    check_data_shape(name, shapes or {}, tuple(test.x.shape[1:]))
    x, labels = test.x.numpy(), test.y.numpy()
    logits = _run_checks(report, path, data, x)
    if logits is None:
        return report
    if judge.name != "classification":
        judge.check_outputs(torch.from_numpy(logits), test.y, f"{path}: output")
        report.checks += _metric_checks(judge, logits, test.y, train_y, data)
        if reference is not None:
            _compare_metric(report, model, judge, logits, reference, test.y, x, max_accuracy_drop)
        return report
    if logits.ndim != 2 or len(logits) != len(labels):
        raise UserError(
            f"{path}: output of shape {list(logits.shape)} is not one row of logits per sample "
            f"({len(labels)} samples); give --task for another task"
        )
    report.checks += _accuracy_checks(logits, labels, data)
    if reference is not None:
        _compare(report, model, logits, reference, labels, x, max_accuracy_drop)
    return report


def _metric_checks(
    task: Task, outputs: np.ndarray, targets: torch.Tensor, train_y: torch.Tensor, data: str
) -> list[Check]:
    """The task's metrics (information) and the baseline check (a file no better than a useless model)."""
    found = task_metrics(task, outputs, targets)
    value = found[task.primary]
    baseline = task.baseline(train_y, targets, outputs.shape[-1] if outputs.ndim > 1 else 1)
    shown = ", ".join(f"{k} {v:.4g}" for k, v in found.items())
    return [
        Check(task.primary, True, f"{shown} on the {data} test split ({len(targets)} samples)"),
        Check(
            "baseline",
            not task.at_baseline(value, baseline),
            f"{task.primary} {value:.4g} vs baseline {baseline:.4g}",
        ),
    ]


def _compare_metric(
    report: FileReport,
    model: onnx.ModelProto,
    task: Task,
    outputs: np.ndarray,
    reference: Path,
    targets: torch.Tensor,
    x: np.ndarray,
    max_drop: float,
) -> None:
    """Parity (float files) or the primary metric's drop (an int8 file of a float reference)."""
    try:
        ref = _logits(reference, x)
    except Exception as exc:
        raise UserError(
            f"--reference {reference}: onnxruntime cannot run it ({type(exc).__name__})"
        ) from None
    value, ref_value = (
        task_metrics(task, outputs, targets)[task.primary],
        task_metrics(task, ref, targets)[task.primary],
    )
    if is_quantized(model) and not is_quantized(onnx.load(str(reference))):
        drop = task.drop(ref_value, value)
        report.checks.append(
            Check("metric_drop", True, f"int8 file: {task.primary} {value:.4g} vs {ref_value:.4g}")
        )
        if not within_drop_limit(drop, max_drop):
            report.not_deployable = over_limit_reason(drop, max_drop, task.primary)
        return
    diff = parity_diff(outputs, ref)
    report.checks.append(
        Check("parity", within_parity(diff), f"max abs diff {diff:.3g} vs {reference.name} (≤ {PARITY_ATOL})")
    )


def _run_checks(report: FileReport, path: Path, data: str, x: np.ndarray) -> np.ndarray | None:
    """checker, load and one run on the test inputs: the logits, or None when it cannot run."""
    opened = open_checked(path)
    report.checks.append(Check("checker", opened.checker, opened.checker_error or "onnx.checker passed"))
    if opened.session is None:
        report.checks.append(Check("load", False, f"onnxruntime cannot load it: {opened.load_error}"))
        return None
    report.checks.append(Check("load", True, "onnxruntime loads it"))
    try:
        return run_session(opened.session, x)
    except Exception as exc:
        detail = f"cannot run on {data} inputs of shape {list(x.shape[1:])}: {first_line(exc)}"
        report.checks.append(Check("input", False, detail))
        return None


def _accuracy_checks(logits: np.ndarray, labels: np.ndarray, data: str) -> list[Check]:
    """Test accuracy (information) and the chance-level check (a file no better than guessing)."""
    classes = logits.shape[1]
    acc, chance = accuracy(logits, labels), chance_level(torch.from_numpy(labels), classes)
    versus = f"{acc:.2%} vs chance level {chance:.2%} ({classes} classes, {len(labels)} samples)"
    return [
        Check("accuracy", True, f"{acc:.2%} on the {data} test split ({len(labels)} samples)"),
        Check("chance_level", acc > chance, versus),
    ]


def _compare(
    report: FileReport,
    model: onnx.ModelProto,
    logits: np.ndarray,
    reference: Path,
    labels: np.ndarray,
    x: np.ndarray,
    max_accuracy_drop: float,
) -> None:
    """Parity and equal accuracy vs `reference`; for an int8 file of a float reference, the drop."""
    try:
        ref_logits = _logits(reference, x)
    except Exception as exc:  # a reference onnxruntime rejects is bad input, not a failed check
        name = type(exc).__name__
        raise UserError(f"--reference {reference}: onnxruntime cannot run it ({name})") from None
    acc, ref_acc = accuracy(logits, labels), accuracy(ref_logits, labels)
    if is_quantized(model) and not is_quantized(onnx.load(str(reference))):
        # A lossy file is judged by its drop, which makes it not deployable, never broken.
        drop = accuracy_drop_points(ref_acc, acc)
        detail = (
            f"int8 file: {acc:.2%} vs reference {ref_acc:.2%} ({-drop:+.2f} pt, limit {max_accuracy_drop})"
        )
        report.checks.append(Check("accuracy_drop", True, detail))
        if not within_drop_limit(drop, max_accuracy_drop):
            report.not_deployable = over_limit_reason(drop, max_accuracy_drop)
    else:
        diff = parity_diff(logits, ref_logits)
        ok = within_parity(diff)
        report.checks.append(
            Check("parity", ok, f"max abs diff {diff:.3g} vs {reference.name} (≤ {PARITY_ATOL})")
        )
        same = accuracies_match(acc, ref_acc, len(labels))
        report.checks.append(Check("accuracy_match", same, f"{acc:.2%} vs reference {ref_acc:.2%}"))
