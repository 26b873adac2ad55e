"""`paiexport validate`: checks on one ONNX file against a dataset and, optionally, a reference file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from paiexport.data import DataConfig
from paiexport.errors import UserError, first_line
from paiexport.verify.checks import is_quantized, make_session, open_checked, stored_zeros
from paiexport.verify.eval_data import eval_split, validation_data
from paiexport.verify.inputs import check_data_shape, data_input, graph_inputs
from paiexport.verify.inspect import load_model
from paiexport.verify.rules import (
    PARITY_ATOL,
    accuracies_match,
    accuracy_drop_points,
    chance_level,
    over_limit_reason,
    parity_diff,
    within_drop_limit,
    within_parity,
)
from paiexport.verify.validate import accuracy, run_session

DATASET_KEY = "paiexport.dataset"  # set by deploy.run_metadata


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


def check_file(
    path: Path,
    data: str | DataConfig,
    reference: Path | None,
    max_accuracy_drop: float,
    seed: int | None = None,
    shapes: dict[str, tuple[int, ...]] | None = None,
) -> FileReport:
    """checker, load, input shape, parity (or accuracy for int8) vs `reference`, accuracy."""
    model = load_model(path)
    if reference is not None:
        load_model(reference)
    cfg = data if isinstance(data, DataConfig) else validation_data(data)
    data = cfg.name
    _check_dataset(model, path, data)
    name = data_input(graph_inputs(model, str(path)), shapes or {}, str(path))
    report = FileReport(
        sparsity={n: s.sparsity for n, s in stored_zeros(model, str(path)).items() if s.ndim >= 2}
    )
    test = eval_split(model, cfg, split_seed(model, seed))
    check_data_shape(name, shapes or {}, tuple(test.x.shape[1:]))
    x, labels = test.x.numpy(), test.y.numpy()
    logits = _run_checks(report, path, data, x)
    if logits is None:
        return report
    report.checks += _accuracy_checks(logits, labels, data)
    if reference is not None:
        _compare(report, model, logits, reference, labels, x, max_accuracy_drop)
    return report


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
    acc, chance, classes = accuracy(logits, labels), chance_level(labels, logits.shape[1]), logits.shape[1]
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
