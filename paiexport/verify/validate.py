"""Validate an exported ONNX file against the PyTorch model it came from."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from paiexport.data import Split
from paiexport.export.transforms import FLOAT_TYPES, array_sparsity

PARITY_ATOL = 1e-4  # float32 reassociation between runtimes stays far below this
PARITY_BATCH = 256


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
    parity_required: bool = True  # int8 files are judged by accuracy only

    @property
    def passed(self) -> bool:
        return (
            self.checker and self.loads and (self.parity or not self.parity_required) and self.accuracy_match
        )

    def to_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed}


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
) -> FileValidation:
    """Checker, load, output parity on a held-out batch, and test accuracy vs PyTorch.

    A `quantized` file needs no parity; its accuracy may be at most `max_accuracy_drop`
    points below PyTorch's. `reference` is the model's logits on `test` when the caller has
    them already (one forward pass serves every file of a run).
    """
    labels = test.y.numpy()
    if reference is None:
        reference = torch_logits(model, test.x)
    acc_torch = accuracy(reference, labels)
    result = FileValidation(variant, False, False, float("inf"), False, 0.0, acc_torch, False)
    result.parity_required = not quantized
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
    if quantized:
        result.accuracy_match = (acc_torch - result.accuracy) * 100 <= max_accuracy_drop + 1e-9
    return result


def onnx_weight_sparsity(path: Path, names: list[str]) -> dict[str, float]:
    """Sparsity of the named weights as stored in the file (dense or sparse initializers)."""
    model = onnx.load(str(path))
    found: dict[str, float] = {}
    for tensor in model.graph.initializer:
        if tensor.name in names and tensor.data_type in FLOAT_TYPES:
            values = onnx.numpy_helper.to_array(tensor)
            found[tensor.name] = array_sparsity(values)
    for sparse in model.graph.sparse_initializer:
        if sparse.values.name in names:
            total = int(np.prod(sparse.dims))
            nnz = np.count_nonzero(onnx.numpy_helper.to_array(sparse.values))
            found[sparse.values.name] = 1.0 - nnz / max(total, 1)
    return found
