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
from paiexport.verify.checks import is_quantized, open_checked, stored_zeros
from paiexport.verify.checks import make_session as make_session  # where bench and tests import it
from paiexport.verify.rules import (
    accuracies_match,
    accuracy_drop_points,
    chance_level,
    over_limit_reason,
    parity_diff,
    within_drop_limit,
    within_parity,
)


@dataclass
class FileValidation:
    variant: str
    checker: bool
    loads: bool
    max_abs_diff: float
    parity: bool
    accuracy: float
    accuracy_torch: float
    accuracy_match: bool
    error: str | None = None
    parity_required: bool = True  # False for lossy (int8) files: judged by their accuracy drop
    chance_level: float = 0.0
    sparsity_mismatch: list[str] = field(default_factory=list)  # weights whose zeros differ from the masks
    max_accuracy_drop: float = 1.0

    @property
    def broken_checks(self) -> list[str]:
        """The failed correctness checks: a file with any is broken (exit 1), not merely lossy."""
        failed = {
            "checker": not self.checker,
            "load": self.checker and not self.loads,
            "parity": self.loads and self.parity_required and not self.parity,
            "accuracy": self.loads and self.parity_required and not self.accuracy_match,
            "chance_level": self.loads and self.accuracy <= self.chance_level,
            "sparsity": bool(self.sparsity_mismatch),
        }
        return [name for name, bad in failed.items() if bad]

    @property
    def passed(self) -> bool:
        return not self.broken_checks

    @property
    def accuracy_drop(self) -> float:
        """Points below PyTorch (negative: above)."""
        return accuracy_drop_points(self.accuracy_torch, self.accuracy)

    def within_limit(self, max_accuracy_drop: float) -> bool:
        """Float files match PyTorch (a correctness check); a lossy file may lose the limit."""
        return self.parity_required or within_drop_limit(self.accuracy_drop, max_accuracy_drop)

    @property
    def deployable(self) -> bool:
        return self.passed and self.within_limit(self.max_accuracy_drop)

    @property
    def reason(self) -> str:
        if not self.passed:
            return f"broken: {', '.join(self.broken_checks)}"
        if self.parity_required:
            return "matches PyTorch"
        drop, limit = self.accuracy_drop, self.max_accuracy_drop
        if self.deployable:
            return f"{(self.accuracy - self.accuracy_torch) * 100:+.1f} pt vs PyTorch (limit {limit})"
        return over_limit_reason(drop, limit)

    def to_dict(self) -> dict:
        return {
            **asdict(self),
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
def torch_logits(model: nn.Module, x: torch.Tensor, batch_size: int = 512) -> np.ndarray:
    model.eval()
    return torch.cat([model(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]).numpy()


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((logits.argmax(axis=1) == labels).mean()) if len(labels) else 0.0


def validate_file(
    path: Path,
    variant: str,
    model: nn.Module,
    test: Split,
    *,
    max_accuracy_drop: float = 1.0,
    reference: np.ndarray | None = None,
    zeros: dict[str, tuple[int, int]] | None = None,
) -> FileValidation:
    """Checker, load, output parity on a held-out batch, test accuracy vs PyTorch, chance level,
    and the zeros stored per weight vs `zeros` (name -> (zeros, numel) of the masked model).

    A quantized file (`checks.is_quantized`, as `paiexport validate` decides) needs no parity
    and no equal accuracy: it is deployable when its accuracy is at most `max_accuracy_drop`
    points below PyTorch's, and not broken otherwise. `reference` is the model's logits on
    `test` when the caller has them already (one forward pass serves every file of a run).
    """
    labels = test.y.numpy()
    if reference is None:
        reference = torch_logits(model, test.x)
    acc_torch = accuracy(reference, labels)
    result = FileValidation(variant, False, False, float("inf"), False, 0.0, acc_torch, False)
    result.max_accuracy_drop = max_accuracy_drop
    result.chance_level = chance_level(labels, reference.shape[1])
    opened = open_checked(path)
    result.checker = opened.checker
    result.loads = opened.checker and opened.session is not None
    if not result.loads:  # report, don't crash: validation is a verdict on the file
        result.error = opened.checker_error or opened.load_error
        return result
    stored = onnx.load(str(path))
    result.parity_required = not is_quantized(stored)
    logits = run_session(opened.session, test.x.numpy())
    result.max_abs_diff = parity_diff(logits, reference)
    result.parity = within_parity(result.max_abs_diff)
    result.accuracy = accuracy(logits, labels)
    result.accuracy_match = accuracies_match(result.accuracy, acc_torch, len(labels))
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
