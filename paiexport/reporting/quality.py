"""report.json sections on how good the model and its files are: the task, its metrics,
classification's accuracy, and each file's validation entry (`FileCheck`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """The base of every typed report.json section: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


class Accuracy(Section):
    torch: float
    onnx: dict[str, float] = {}


class RuntimeCheck(Section):
    """One file checked in a runtime besides onnxruntime (`bench.runtime_checks.RuntimeCheck`)."""

    loads: bool
    error: str | None = None
    metrics: dict[str, float | None] = {}
    metric: float | None = None
    parity_required: bool = True
    parity: bool | None = None
    max_abs_diff: float | None = None
    broken_checks: list[str] = []
    deployable: bool
    reason: str = ""


class FileCheck(Section):
    """One file's `validation` entry (FileValidation.to_dict)."""

    passed: bool
    broken_checks: list[str] = []
    deployable: bool = True
    reason: str = ""
    variant: str | None = None
    checker: bool = True
    loads: bool = True
    max_abs_diff: float | None = 0.0  # null: the file did not run (report.json is strict JSON)
    parity: bool = True
    accuracy: float | None = None
    accuracy_torch: float | None = None
    accuracy_match: bool = True
    error: str | None = None
    parity_required: bool = True
    chance_level: float = 0.0
    sparsity_mismatch: list[str] = []
    max_accuracy_drop: float = 1.0
    # Every task: its metrics for this file and for PyTorch, the primary one's values.
    task: str = "classification"
    primary: str = "accuracy"
    higher_is_better: bool = True
    metrics: dict[str, float | None] = {}
    metrics_torch: dict[str, float | None] = {}
    metric: float | None = None
    metric_torch: float | None = None
    metric_match: bool = True
    baseline: float | None = None
    max_metric_drop: float | None = None
    drop_scale: float = 100.0
    relative_drop: bool = False
    runtimes: dict[str, RuntimeCheck] | None = None  # bench.runtimes besides onnxruntime


class TaskInfo(Section):
    """report.json `task`: what the run learned and how it is judged."""

    name: str
    primary: str
    higher_is_better: bool
    baseline: float | None = None
    drop_scale: float = 1.0  # how a drop of the primary metric is measured (tasks.base.DropRule)
    relative_drop: bool = False
    percent: bool = False  # the primary metric is a fraction, shown in %


class Metrics(Section):
    """report.json `metrics`: every metric of the task for the PyTorch model (and each file)."""

    torch: dict[str, float | None]
    onnx: dict[str, dict[str, float | None]] = {}
