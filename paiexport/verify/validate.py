"""Validate an exported ONNX file against the PyTorch model it came from."""

from __future__ import annotations

from dataclasses import dataclass
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
from paiexport.verify.file_validation import FileValidation as FileValidation  # where callers import it
from paiexport.verify.file_validation import accuracy_validation as accuracy_validation
from paiexport.verify.rules import (
    parity_diff,
    within_parity,
)


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
        drop_scale=task.drop_scale,
        relative_drop=task.relative_drop,
    )
    opened = open_checked(path)
    result.checker = opened.checker
    result.loads = opened.checker and opened.session is not None
    if not result.loads:  # report, don't crash: validation is a verdict on the file
        result.error = opened.checker_error or opened.load_error
        return result
    _score(result, path, opened.session, task, test, reference, zeros or {})
    return result


def _score(
    result: FileValidation,
    path: Path,
    session: ort.InferenceSession,
    task: Task,
    test: Split,
    reference: np.ndarray,
    zeros: dict[str, tuple[int, int]],
) -> None:
    """Parity, the task's metrics and the stored zeros of a file that loads."""
    stored = onnx.load(str(path))
    result.parity_required = not is_quantized(stored)
    outputs = run_session(session, test.x.numpy())
    result.max_abs_diff = parity_diff(outputs, reference)
    result.parity = within_parity(result.max_abs_diff)
    result.metrics = task_metrics(task, outputs, test.y)
    result.metric_match = task.metrics_match(result.metrics, result.metrics_torch, len(test.y))
    found = float_zeros(stored, list(zeros))
    # Only a tensor of the weight's own size can be compared (a compact graph drops rows).
    result.sparsity_mismatch = [
        n for n, (z, size) in found.items() if size == zeros[n][1] and z != zeros[n][0]
    ]


def float_zeros(model: onnx.ModelProto, names: list[str]) -> dict[str, tuple[int, int]]:
    """(zeros, numel) of the named float weights as stored in the file (dense or sparse initializers)."""
    return {n: (s.zeros, s.size) for n, s in stored_zeros(model).items() if n in names and s.is_float}


def onnx_weight_sparsity(path: Path, names: list[str]) -> dict[str, float]:
    """Sparsity of the named weights as stored in the file (dense or sparse initializers)."""
    return {n: z / max(size, 1) for n, (z, size) in float_zeros(onnx.load(str(path)), names).items()}
