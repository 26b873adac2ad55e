"""Validate an exported ONNX file against the PyTorch model it came from."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from paiexport.data import Split
from paiexport.tasks import Task, make_task
from paiexport.verify.checks import is_quantized, open_checked, stored_zeros
from paiexport.verify.checks import make_session as make_session  # where bench and tests import it
from paiexport.verify.rules import (
    metric_drop,
    over_limit_reason,
    parity_diff,
    within_drop_limit,
    within_parity,
)


@dataclass
class FileValidation:
    """One file checked against PyTorch in the task's terms (`primary` is the task's primary metric)."""

    variant: str
    checker: bool
    loads: bool
    max_abs_diff: float
    parity: bool
    metrics: dict[str, float]
    metrics_torch: dict[str, float]
    metric_match: bool
    error: str | None = None
    parity_required: bool = True  # False for lossy (int8) files: judged by their metric drop
    baseline: float = 0.0  # the primary metric of a useless model (classification: chance level)
    sparsity_mismatch: list[str] = field(default_factory=list)  # weights whose zeros differ from the masks
    max_metric_drop: float = 1.0  # in the metric's unit (points for accuracy)
    task: str = "classification"
    primary: str = "accuracy"
    higher_is_better: bool = True

    @property
    def metric(self) -> float:
        return self.metrics.get(self.primary, 0.0)

    @property
    def metric_torch(self) -> float:
        return self.metrics_torch.get(self.primary, 0.0)

    @property
    def accuracy(self) -> float:
        """The primary metric (classification's accuracy); deploy and gates read it."""
        return self.metric

    @property
    def accuracy_torch(self) -> float:
        return self.metric_torch

    @property
    def chance_level(self) -> float:
        """Classification's name for the baseline."""
        return self.baseline

    @property
    def at_baseline(self) -> bool:
        return self.metric <= self.baseline if self.higher_is_better else self.metric >= self.baseline

    @property
    def broken_checks(self) -> list[str]:
        """The failed correctness checks: a file with any is broken (exit 1), not merely lossy.

        Classification names them as it always has ("accuracy", "chance_level")."""
        classification = self.task == "classification"
        failed = {
            "checker": not self.checker,
            "load": self.checker and not self.loads,
            "parity": self.loads and self.parity_required and not self.parity,
            "accuracy" if classification else "metric": (
                self.loads and self.parity_required and not self.metric_match
            ),
            "chance_level" if classification else "baseline": self.loads and self.at_baseline,
            "sparsity": bool(self.sparsity_mismatch),
        }
        return [name for name, bad in failed.items() if bad]

    @property
    def passed(self) -> bool:
        return not self.broken_checks

    @property
    def metric_drop(self) -> float:
        """How much worse than PyTorch, in the limit's unit (points for accuracy; negative: better)."""
        return metric_drop(self.metric_torch, self.metric, self.higher_is_better, self.task)

    @property
    def accuracy_drop(self) -> float:
        return self.metric_drop

    def within_limit(self, max_metric_drop: float) -> bool:
        """Float files match PyTorch (a correctness check); a lossy file may lose the limit."""
        return self.parity_required or within_drop_limit(self.metric_drop, max_metric_drop)

    @property
    def deployable(self) -> bool:
        return self.passed and self.within_limit(self.max_metric_drop)

    @property
    def unit(self) -> str:
        """The unit of `metric_drop` and its limit: points of accuracy, else the metric itself."""
        return "pt" if self.task == "classification" else self.primary

    @property
    def reason(self) -> str:
        if not self.passed:
            return f"broken: {', '.join(self.broken_checks)}"
        if self.parity_required:
            return "matches PyTorch"
        limit = self.max_metric_drop
        if not self.deployable:
            return over_limit_reason(self.metric_drop, limit, self.unit)
        if self.task == "classification":
            return f"{(self.metric - self.metric_torch) * 100:+.1f} pt vs PyTorch (limit {limit})"
        return f"{self.metric - self.metric_torch:+.4g} {self.unit} vs PyTorch (limit {limit})"

    def to_dict(self) -> dict:
        data = asdict(self)
        if self.task == "classification":  # report.json keys of classification, as before
            data |= {
                "accuracy": self.metric,
                "accuracy_torch": self.metric_torch,
                "accuracy_match": self.metric_match,
                "chance_level": self.baseline,
                "max_accuracy_drop": self.max_metric_drop,
            }
        return {
            **data,
            "metric": self.metric,
            "metric_torch": self.metric_torch,
            "passed": self.passed,
            "broken_checks": self.broken_checks,
            "deployable": self.deployable,
            "reason": self.reason,
        }


def run_session(session: ort.InferenceSession, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Logits of the file's one input fed `x` in chunks.

    A file with a fixed batch dimension gets chunks of exactly that size (the last one padded
    with zeros, its extra rows dropped); `x` is cast to the input's float type.
    """
    spec = session.get_inputs()[0]
    fixed = spec.shape[0] if spec.shape and isinstance(spec.shape[0], int) and spec.shape[0] > 0 else None
    step = fixed or batch_size
    dtype = {"tensor(float16)": np.float16, "tensor(double)": np.float64}.get(spec.type, x.dtype)
    outs = []
    for i in range(0, len(x), step):
        chunk = x[i : i + step].astype(dtype, copy=False)
        rows = len(chunk)
        if fixed and rows < fixed:
            chunk = np.concatenate([chunk, np.zeros((fixed - rows, *chunk.shape[1:]), chunk.dtype)])
        outs.append(session.run(None, {spec.name: chunk})[0][:rows])
    return np.concatenate(outs)


@torch.no_grad()
def torch_logits(
    model: nn.Module, x: torch.Tensor, batch_size: int = 512, task: Task | None = None
) -> np.ndarray:
    """The model's output (the one `task` reads) on `x`, in eval mode."""
    model.eval()
    pick = (task or make_task()).pick
    return torch.cat([pick(model(x[i : i + batch_size])) for i in range(0, len(x), batch_size)]).numpy()


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((logits.argmax(axis=1) == labels).mean()) if len(labels) else 0.0


def task_metrics(
    task: Task, outputs: np.ndarray, targets: torch.Tensor, batch_size: int = 4096
) -> dict[str, float]:
    """Every metric of `task` over a split's outputs (as a file or PyTorch gave them)."""
    meter = task.meter()
    for i in range(0, len(targets), batch_size):
        meter.add(
            torch.from_numpy(np.ascontiguousarray(outputs[i : i + batch_size])).float(),
            targets[i : i + batch_size],
        )
    return meter.result()


@dataclass(frozen=True)
class Judging:
    """How a run judges its files: the task, its baseline and the int8 limit (validate.max_metric_drop)."""

    task: Task
    baseline: float
    max_metric_drop: float = 1.0


def judging_for(
    task: Task, train_y: torch.Tensor, test_y: torch.Tensor, width: int, max_drop: float
) -> Judging:
    return Judging(task, task.baseline(train_y, test_y, width), max_drop)


def validate_file(
    path: Path,
    variant: str,
    model: nn.Module,
    test: Split,
    *,
    judging: Judging | None = None,
    reference: np.ndarray | None = None,
    zeros: dict[str, tuple[int, int]] | None = None,
) -> FileValidation:
    """Checker, load, output parity on a held-out batch, the task's metrics vs PyTorch's, the
    baseline, and the zeros stored per weight vs `zeros` (name -> (zeros, numel) of the masked model).

    A quantized file (`checks.is_quantized`, as `paiexport validate` decides) needs no parity
    and no equal metric: it is deployable when its primary metric is at most `max_metric_drop`
    worse than PyTorch's, and not broken otherwise. `reference` is the model's outputs on
    `test` when the caller has them already (one forward pass serves every file of a run).
    """
    task = judging.task if judging else make_task()
    targets = test.y
    if reference is None:
        reference = torch_logits(model, test.x, task=task)
    torch_metrics = task_metrics(task, reference, targets)
    if judging is None:
        judging = Judging(task, task.baseline(targets, targets, reference.shape[1]))
    result = FileValidation(
        variant,
        False,
        False,
        float("inf"),
        False,
        {},
        torch_metrics,
        False,
        baseline=judging.baseline,
        max_metric_drop=judging.max_metric_drop,
        task=task.name,
        primary=task.primary,
        higher_is_better=task.higher_is_better,
    )
    opened = open_checked(path)
    result.checker = opened.checker
    result.loads = opened.checker and opened.session is not None
    if not result.loads:  # report, don't crash: validation is a verdict on the file
        result.error = opened.checker_error or opened.load_error
        return result
    stored = onnx.load(str(path))
    result.parity_required = not is_quantized(stored)
    outputs = run_session(opened.session, test.x.numpy())
    result.max_abs_diff = parity_diff(outputs, reference)
    result.parity = within_parity(result.max_abs_diff)
    result.metrics = task_metrics(task, outputs, targets)
    result.metric_match = task.metrics_match(result.metrics, torch_metrics, len(targets))
    found = float_zeros(stored, list(zeros or {}))
    # Only a tensor of the weight's own size can be compared (a compact graph drops rows).
    result.sparsity_mismatch = [
        n for n, (z, size) in found.items() if size == zeros[n][1] and z != zeros[n][0]
    ]
    return result


def float_zeros(model: onnx.ModelProto, names: list[str]) -> dict[str, tuple[int, int]]:
    """(zeros, numel) of the named float weights as stored in the file (dense or sparse initializers)."""
    return {n: (s.zeros, s.size) for n, s in stored_zeros(model).items() if n in names and s.is_float}


def onnx_weight_sparsity(path: Path, names: list[str]) -> dict[str, float]:
    """Sparsity of the named weights as stored in the file (dense or sparse initializers)."""
    return {n: z / max(size, 1) for n, (z, size) in float_zeros(onnx.load(str(path)), names).items()}


def accuracy_validation(
    variant: str,
    checker: bool,
    loads: bool,
    max_abs_diff: float,
    parity: bool,
    accuracy: float,
    accuracy_torch: float,
    accuracy_match: bool,
    *,
    chance_level: float = 0.0,
    max_accuracy_drop: float = 1.0,
    **rest: object,
) -> FileValidation:
    """A classification file's validation from its accuracies (the fields report.json keeps)."""
    return FileValidation(
        variant,
        checker,
        loads,
        max_abs_diff,
        parity,
        {"accuracy": accuracy},
        {"accuracy": accuracy_torch},
        accuracy_match,
        baseline=chance_level,
        max_metric_drop=max_accuracy_drop,
        **rest,  # type: ignore[arg-type]
    )
