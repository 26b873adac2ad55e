"""The `metadata_props` every exported file carries: one owner for the `paiexport.*` keys."""

from __future__ import annotations

from typing import Any

import onnx

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
