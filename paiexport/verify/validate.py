"""Validate an exported ONNX file against the PyTorch model it came from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from paiexport.data import Split
from paiexport.inputs import (
    Inputs,
    call_model,
    feeds,
    flat_outputs,
    output_names,
    rows,
    structured,
    take,
    to_numpy,
)
from paiexport.tasks import Task, make_task
from paiexport.verify.checks import is_quantized, open_checked, stored_zeros
from paiexport.verify.checks import make_session as make_session  # where bench and tests import it
from paiexport.verify.file_validation import FileValidation as FileValidation  # where callers import it
from paiexport.verify.file_validation import accuracy_validation as accuracy_validation
from paiexport.verify.rules import (
    parity_diff,
    within_parity,
)

Outputs = dict[str, np.ndarray]  # every output of a file or a model, by name, in the file's order
FLOAT_CASTS = {"tensor(float16)": np.float16, "tensor(double)": np.float64}


def run_outputs(session: ort.InferenceSession, x: Any, batch_size: int = 512) -> Outputs:
    """Every output of the file fed `x` in chunks: one array goes to the file's one input, a tuple
    to its inputs in order, a dict by name (`inputs.feeds`).

    A file with a fixed batch dimension gets chunks of exactly that size (the last one padded
    with zeros, its extra rows dropped); float arrays are cast to the input's float type.
    """
    specs = session.get_inputs()
    arrays = feeds([s.name for s in specs], x)
    first = specs[0]
    fixed = first.shape[0] if first.shape and isinstance(first.shape[0], int) and first.shape[0] > 0 else None
    step = fixed or batch_size
    types = {s.name: FLOAT_CASTS.get(s.type) for s in specs}
    names = [o.name for o in session.get_outputs()]
    outs: list[list[np.ndarray]] = [[] for _ in names]
    for i in range(0, rows(arrays), step):
        chunk = {n: _cast(a[i : i + step], types[n], fixed) for n, a in arrays.items()}
        count = min(step, rows(arrays) - i)
        for found, out in zip(outs, session.run(None, chunk), strict=True):
            found.append(out[:count])
    return {n: np.concatenate(found) for n, found in zip(names, outs, strict=True)}


def _cast(chunk: np.ndarray, dtype: type | None, fixed: int | None) -> np.ndarray:
    """A chunk as the input takes it: a float cast to the input's float type, padded to `fixed` rows."""
    if dtype is not None and chunk.dtype.kind == "f":
        chunk = chunk.astype(dtype, copy=False)
    if fixed and len(chunk) < fixed:
        chunk = np.concatenate([chunk, np.zeros((fixed - len(chunk), *chunk.shape[1:]), chunk.dtype)])
    return chunk


def run_session(session: ort.InferenceSession, x: Any, batch_size: int = 512) -> np.ndarray:
    """The file's first output (logits) fed `x` (see `run_outputs`)."""
    return next(iter(run_outputs(session, x, batch_size).values()))


@torch.no_grad()
def torch_outputs(model: nn.Module, x: Inputs, batch_size: int = 512) -> Outputs:
    """Every output of the model on `x`, in eval mode, named as its exported file names them."""
    model.eval()
    parts: list[list[torch.Tensor]] = []
    names: list[str] = []
    for i in range(0, rows(x), batch_size):
        out = call_model(model, take(x, slice(i, i + batch_size)))
        names = output_names(out)
        parts.append(flat_outputs(out))
    return {n: torch.cat([p[k] for p in parts]).numpy() for k, n in enumerate(names)}


def picked(task: Task, outputs: Outputs) -> np.ndarray:
    """The output `task` reads (`task.output`: a dict output's name, a tuple output's index;
    else the first), of a model's outputs or a file's."""
    shaped = structured({n: torch.from_numpy(a) for n, a in outputs.items()})
    return task.pick(shaped).numpy()


def torch_logits(model: nn.Module, x: Inputs, batch_size: int = 512, task: Task | None = None) -> np.ndarray:
    """The model's output (the one `task` reads) on `x`, in eval mode."""
    return picked(task or make_task(), torch_outputs(model, x, batch_size))


def outputs_diff(found: Outputs, reference: Outputs) -> float:
    """Parity over every output: the largest difference of any (inf when the outputs differ in number)."""
    if len(found) != len(reference):
        return float("inf")
    return max(parity_diff(a, b) for a, b in zip(found.values(), reference.values(), strict=True))


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
    reference: Outputs | None = None,
    zeros: dict[str, tuple[int, int]] | None = None,
) -> FileValidation:
    """Checker, load, output parity on a held-out batch, the task's metrics vs PyTorch's, the
    baseline, and the zeros stored per weight vs `zeros` (name -> (zeros, numel) of the masked model).

    A quantized file (`checks.is_quantized`, as `paiexport validate` decides) needs no parity
    and no equal metric: it is deployable when its primary metric is at most `max_metric_drop`
    worse than PyTorch's, and not broken otherwise. `reference` is the model's outputs on
    `test` (`torch_outputs`) when the caller has them already (one forward pass serves every
    file of a run). Parity holds on every output; the metrics read the one `task` reads.
    """
    task = judging.task if judging else make_task()
    targets = test.y
    if reference is None:
        reference = torch_outputs(model, test.x)
    read = picked(task, reference)
    torch_metrics = task_metrics(task, read, targets)
    if judging is None:
        judging = Judging(task, task.baseline(targets, targets, read.shape[1]))
    result = _unchecked(variant, torch_metrics, judging)
    opened = open_checked(path)
    result.checker = opened.checker
    result.loads = opened.checker and opened.session is not None
    if not result.loads:  # report, don't crash: validation is a verdict on the file
        result.error = opened.checker_error or opened.load_error
        return result
    _score(result, path, opened.session, task, test, reference, zeros or {})
    return result


def _unchecked(variant: str, torch_metrics: dict[str, float], judging: Judging) -> FileValidation:
    """A file's validation before any check ran: PyTorch's metrics and how the task judges it."""
    task = judging.task
    return FileValidation(
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


def _score(
    result: FileValidation,
    path: Path,
    session: ort.InferenceSession,
    task: Task,
    test: Split,
    reference: Outputs,
    zeros: dict[str, tuple[int, int]],
) -> None:
    """Parity (every output), the task's metrics and the stored zeros of a file that loads."""
    stored = onnx.load(str(path))
    result.parity_required = not is_quantized(stored)
    outputs = run_outputs(session, to_numpy(test.x))
    result.max_abs_diff = outputs_diff(outputs, reference)
    result.parity = within_parity(result.max_abs_diff)
    result.metrics = task_metrics(task, picked(task, outputs), test.y)
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
