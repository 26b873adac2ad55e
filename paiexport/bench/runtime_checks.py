"""Each file validated in each runtime besides onnxruntime: does it load, what does it score.

A run's `validation` is onnxruntime's (checker, load, parity, metrics, sparsity: the verdict).
In another runtime a file gets the same judgment on that runtime's outputs: its file-level
checks (checker, stored sparsity) carry over, and load, parity with PyTorch and the task's
metrics are measured again. A float file must match PyTorch there too (the runtime computes in
f32, `runtimes/openvino.py`); a quantized one, or any file in a runtime computing in a lossy
precision, is judged by its primary metric's drop against `validate.max_metric_drop`. A file
the runtime cannot read is reported unreadable there: not a crash, never deployed there.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from paiexport.bench.runtime_latency import RuntimeLatency
from paiexport.bench.runtimes import DEFAULT_RUNTIME, Runtime, RuntimeInfo
from paiexport.data import Split
from paiexport.inputs import to_numpy
from paiexport.tasks import Task
from paiexport.verify.rules import parity_diff, within_parity
from paiexport.verify.validate import FileValidation, picked, run_outputs, task_metrics

T = TypeVar("T")


@dataclass(frozen=True)
class RuntimeCheck:
    """One file in one runtime: `check` is its validation there, `unreadable` why it did not open."""

    runtime: str
    check: FileValidation
    unreadable: str | None = None

    @property
    def loads(self) -> bool:
        return self.unreadable is None

    @property
    def deployable(self) -> bool:
        return self.loads and self.check.deployable

    @property
    def reason(self) -> str:
        return f"unreadable in {self.runtime}: {self.unreadable}" if self.unreadable else self.check.reason

    def to_dict(self) -> dict[str, Any]:
        """report.json `validation.<variant>.runtimes.<runtime>`."""
        c = self.check
        return {
            "loads": self.loads,
            "error": self.unreadable,
            "metrics": c.metrics,
            "metric": c.metric if self.loads else None,
            "parity_required": c.parity_required,
            "parity": c.parity if self.loads else None,
            "max_abs_diff": c.max_abs_diff if self.loads else None,
            "broken_checks": c.broken_checks if self.loads else [],
            "deployable": self.deployable,
            "reason": self.reason,
        }


def check_in_runtime(
    runtime: Runtime, path: Path, base: FileValidation, test: Split, reference: np.ndarray, task: Task
) -> RuntimeCheck:
    """`base` (the file's onnxruntime validation) with load, parity and metrics from `runtime`."""
    try:
        session = runtime.open(path, 1)
    except Exception as exc:  # a verdict on the file in this runtime, not a crash
        reason = runtime.unreadable(exc)
        failed = dataclasses.replace(base, loads=False, error=reason, metrics={}, metric_match=False)
        return RuntimeCheck(runtime.name, failed, reason)
    outputs = picked(task, run_outputs(session, to_numpy(test.x)))  # every input, the task's output
    diff = parity_diff(outputs, reference)
    metrics = task_metrics(task, outputs, test.y)
    check = dataclasses.replace(
        base,
        loads=True,
        error=None,
        max_abs_diff=diff,
        parity=within_parity(diff),
        metrics=metrics,
        metric_match=task.metrics_match(metrics, base.metrics_torch, len(test.y)),
        parity_required=base.parity_required and not runtime.precision().lossy,
    )
    return RuntimeCheck(runtime.name, check)


def check_in_runtimes(
    runtimes: Sequence[Runtime],
    files: dict[str, Path],
    checks: dict[str, FileValidation],
    test: Split,
    reference: np.ndarray,
    task: Task,
) -> dict[str, dict[str, RuntimeCheck]]:
    """runtime -> variant -> its check there, for every runtime but onnxruntime (whose checks
    are `checks`, the run's `validation`)."""
    return {
        r.name: {v: check_in_runtime(r, p, checks[v], test, reference, task) for v, p in files.items()}
        for r in runtimes
        if r.name != DEFAULT_RUNTIME
    }


def runtime_validations(checks: dict[str, RuntimeCheck]) -> dict[str, FileValidation]:
    """The validations of the files a runtime reads (what its deploy choice may pick from)."""
    return {v: c.check for v, c in checks.items() if c.loads}


@dataclass
class RuntimeOutcome:
    """What a run measured in runtimes besides onnxruntime: `latency` (onnxruntime's too, for
    the ratios against it; empty when not benchmarked) and each file's check in each runtime."""

    latency: RuntimeLatency
    checks: dict[str, dict[str, RuntimeCheck]]
    info: dict[str, RuntimeInfo]

    @property
    def runtimes(self) -> list[str]:
        return list(self.checks)

    def with_copy(self, source: str, copy: str) -> RuntimeOutcome:
        """`copy` (model.deploy.onnx) measured and checked as `source`, the file it copies."""

        def renamed(c: RuntimeCheck) -> RuntimeCheck:
            return dataclasses.replace(c, check=dataclasses.replace(c.check, variant=copy))

        latency = dataclasses.replace(
            self.latency,
            stats=_copied(self.latency.stats, source, copy, lambda s: s),
            unreadable=_copied(self.latency.unreadable, source, copy, lambda s: s),
        )
        return RuntimeOutcome(latency, _copied(self.checks, source, copy, renamed), self.info)


def _copied(
    table: dict[str, dict[str, T]], source: str, copy: str, how: Callable[[T], T]
) -> dict[str, dict[str, T]]:
    """runtime -> file -> value, `copy` holding `source`'s value (copied `how`) where it has one."""
    return {
        name: {**by_file, copy: how(by_file[source])} if source in by_file else by_file
        for name, by_file in table.items()
    }
