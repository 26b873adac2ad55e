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
from paiexport.export.transforms import FLOAT_TYPES

PARITY_ATOL = 1e-4  # float32 reassociation between runtimes stays far below this
PARITY_BATCH = 256
CHANCE_SIGMAS = 3.0  # a guesser beats its expected accuracy by 3 standard errors 1 time in 740


def chance_level(labels: np.ndarray, num_classes: int) -> float:
    """The accuracy at or below which a classifier is no better than guessing.

    The best constant guess scores `p = max(1 / num_classes, share of the most frequent test
    label)`; on `n` test samples a guesser's accuracy has standard error `sqrt(p (1 - p) / n)`.
    Chance level is `p` plus `CHANCE_SIGMAS` standard errors (MNIST-1D's test split: 13.52%;
    every bundled recipe cut to one epoch scores at least 25%).
    """
    n = max(len(labels), 1)
    majority = np.bincount(labels).max() / n if len(labels) else 0.0
    p = max(1.0 / max(num_classes, 1), float(majority))
    return p + CHANCE_SIGMAS * float(np.sqrt(p * (1.0 - p) / n))


def points(drop: float, limit: float) -> str:
    """A drop in points with enough digits to tell it from `limit` (1.04 vs 1.0: '1.04')."""
    digits = 1
    while digits < 4 and (round(drop, digits) <= limit) != (drop <= limit + 1e-9):
        digits += 1
    return f"{drop:.{digits}f}"


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
        return (self.accuracy_torch - self.accuracy) * 100

    def within_limit(self, max_accuracy_drop: float) -> bool:
        """Float files match PyTorch (a correctness check); a lossy file may lose the limit."""
        return self.parity_required or self.accuracy_drop <= max_accuracy_drop + 1e-9

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
        return f"−{points(drop, limit)} pt > {limit}: not deployable"

    def to_dict(self) -> dict:
        return {
            **asdict(self),
            "passed": self.passed,
            "broken_checks": self.broken_checks,
            "deployable": self.deployable,
            "reason": self.reason,
        }


def make_session(path: Path, threads: int = 1) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


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
    quantized: bool = False,
    max_accuracy_drop: float = 1.0,
    reference: np.ndarray | None = None,
    zeros: dict[str, tuple[int, int]] | None = None,
) -> FileValidation:
    """Checker, load, output parity on a held-out batch, test accuracy vs PyTorch, chance level,
    and the zeros stored per weight vs `zeros` (name -> (zeros, numel) of the masked model).

    A `quantized` file needs no parity and no equal accuracy: it is deployable when its accuracy
    is at most `max_accuracy_drop` points below PyTorch's, and not broken otherwise.
    `reference` is the model's logits on `test` when the caller has them already (one forward
    pass serves every file of a run).
    """
    labels = test.y.numpy()
    if reference is None:
        reference = torch_logits(model, test.x)
    acc_torch = accuracy(reference, labels)
    result = FileValidation(variant, False, False, float("inf"), False, 0.0, acc_torch, False)
    result.parity_required = not quantized
    result.max_accuracy_drop = max_accuracy_drop
    result.chance_level = chance_level(labels, reference.shape[1])
    try:
        onnx.checker.check_model(str(path))
        result.checker = True
        session = make_session(path)
        result.loads = True
    except Exception as exc:  # report, don't crash: validation is a verdict on the file
        result.error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        return result
    logits = run_session(session, test.x.numpy())
    held_out = slice(0, PARITY_BATCH)
    result.max_abs_diff = float(np.abs(logits[held_out] - reference[held_out]).max())
    result.parity = result.max_abs_diff <= PARITY_ATOL
    result.accuracy = accuracy(logits, labels)
    # Same predictions up to float noise: allow a flipped near-tie per thousand samples.
    result.accuracy_match = abs(result.accuracy - acc_torch) <= max(1, len(labels) // 1000) / len(labels)
    stored = stored_zeros(path, list(zeros or {}))
    # Only a tensor of the weight's own size can be compared (a compact graph drops rows).
    result.sparsity_mismatch = [
        n for n, (z, size) in stored.items() if size == zeros[n][1] and z != zeros[n][0]
    ]
    return result


def stored_zeros(path: Path, names: list[str]) -> dict[str, tuple[int, int]]:
    """(zeros, numel) of the named float weights as stored in the file (dense or sparse initializers)."""
    model = onnx.load(str(path))
    found: dict[str, tuple[int, int]] = {}
    for tensor in model.graph.initializer:
        if tensor.name in names and tensor.data_type in FLOAT_TYPES:
            values = onnx.numpy_helper.to_array(tensor)
            found[tensor.name] = (values.size - int(np.count_nonzero(values)), values.size)
    for sparse in model.graph.sparse_initializer:
        if sparse.values.name in names:
            total = int(np.prod(sparse.dims))
            nnz = int(np.count_nonzero(onnx.numpy_helper.to_array(sparse.values)))
            found[sparse.values.name] = (total - nnz, total)
    return found


def onnx_weight_sparsity(path: Path, names: list[str]) -> dict[str, float]:
    """Sparsity of the named weights as stored in the file (dense or sparse initializers)."""
    return {n: z / max(size, 1) for n, (z, size) in stored_zeros(path, names).items()}
