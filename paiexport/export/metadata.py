"""The `metadata_props` every exported file carries: one owner for the `paiexport.*` keys."""

from __future__ import annotations

from typing import Any

import onnx
from torch import nn

from paiexport.inputs import Inputs, input_names, is_integer, ordered, tensors
from paiexport.tasks import Task

PREFIX = "paiexport."
VARIANT = f"{PREFIX}variant"
INT8 = f"{PREFIX}int8"  # the int8 mode used (static or dynamic; `auto` resolved)
INT8_FORMAT = f"{PREFIX}int8_format"  # static int8 only: qdq or qoperator
DEPLOY_SOURCE = f"{PREFIX}deploy_source"
COMPACT_MAX_ABS_DIFF = f"{PREFIX}compact_max_abs_diff"
SEED = f"{PREFIX}seed"
INPUT_MEAN = f"{PREFIX}input_mean"  # per-channel normalization the inputs need (validate applies it)
INPUT_STD = f"{PREFIX}input_std"
INPUT_VOCAB = f"{PREFIX}input_vocab"  # integer inputs: "name=N,...", values in [0, N) are valid


def tagged(values: dict[str, Any]) -> dict[str, str]:
    """`{"method": "snip"}` -> `{"paiexport.method": "snip"}` (ONNX metadata values are strings)."""
    return {f"{PREFIX}{key}": str(value) for key, value in values.items()}


def read_metadata(model: onnx.ModelProto) -> dict[str, str]:
    return {p.key: p.value for p in model.metadata_props}


def input_normalization(mean: tuple[float, ...] | None, std: tuple[float, ...] | None) -> dict[str, str]:
    """The normalization keys (comma-separated floats); none when the inputs are used as they are."""
    if mean is None or std is None:
        return {}
    return {
        INPUT_MEAN: ",".join(repr(float(m)) for m in mean),
        INPUT_STD: ",".join(repr(float(s)) for s in std),
    }


def input_vocab(model: nn.Module, x: Inputs) -> dict[str, str]:
    """The vocabulary key of a model with integer inputs (token ids, masks): per integer input,
    its largest value in `x` (the test inputs, which the model ran on) + 1, so that `bench`
    draws valid ids; none for float inputs."""
    x = ordered(model, x) if isinstance(x, dict) else x
    found = [
        f"{name}={int(t.max()) + 1 if t.numel() else 1}"
        for name, t in zip(input_names(model, x), tensors(x), strict=True)
        if is_integer(t)
    ]
    return {INPUT_VOCAB: ",".join(found)} if found else {}


def read_vocab(props: dict[str, str]) -> dict[str, int]:
    """{input name: N} of the vocabulary key; {} when absent or unreadable (a foreign file)."""
    found = {}
    for item in props.get(INPUT_VOCAB, "").split(","):
        name, _, size = item.partition("=")
        if name and size.isdigit() and int(size) > 0:
            found[name] = int(size)
    return found


def read_normalization(props: dict[str, str]) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """The (mean, std) a file records, or None (foreign files, runs without normalization)."""
    if INPUT_MEAN not in props or INPUT_STD not in props:
        return None
    try:
        mean = tuple(float(v) for v in props[INPUT_MEAN].split(","))
        std = tuple(float(v) for v in props[INPUT_STD].split(","))
    except ValueError:
        return None
    return mean, std


def task_metadata(task: Task, torch_metrics: dict[str, float]) -> dict[str, object]:
    """The task's keys of a run's files (tagged with the recipe's): classification writes
    `torch_accuracy` as it always has; another task names itself, its primary metric and
    PyTorch's value of it, and regression with `standardize` the targets' mean and std."""
    if task.name == "classification":
        return {"torch_accuracy": torch_metrics["accuracy"]}
    keys: dict[str, object] = {
        "task": task.name,
        "primary_metric": task.primary,
        f"torch_{task.primary}": torch_metrics[task.primary],
    }
    extra = getattr(task, "metadata", None)
    for name, values in (extra() if callable(extra) else {}).items():
        keys[name] = ",".join(repr(float(v)) for v in values)
    return keys
