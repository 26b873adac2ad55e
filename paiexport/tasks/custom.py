"""A task of the user's own: loss, metrics and baseline are "package.module:callable" specs.

- `loss(outputs, targets)` -> a scalar tensor, averaged over the batch;
- each of `metrics`: `metric(outputs, targets)` -> a number over the whole split (the meter
  concatenates the split's outputs and targets and calls each metric once);
- `primary`: the key of `metrics` that checkpoints, verdicts and gates use;
- `baseline(train_targets, test_targets)` -> the primary metric of a useless model. Without
  one the baseline is -inf (+inf when lower is better): no model is ever "at baseline".
The specs are imported like model factories, from the recipe's folder first (`bind`).
Targets are any int or float tensor, passed on unchanged. Without `data.num_classes` the
output width is max + 1 for integer targets (class or token ids), one output per target
value for float targets.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
from pydantic import AfterValidator, Field, model_validator

from paiexport.errors import UserError, shorten
from paiexport.importing import import_callable, user_code
from paiexport.tasks.base import Meter, Task, TaskConfig, declared_width, shape_text

FACTORY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")  # "package.module:callable", as data/config.py
METRIC_NAME = re.compile(r"^[A-Za-z_]\w{0,39}$")


def _spec(value: str) -> str:
    if not FACTORY.match(value):
        raise ValueError(f"expected 'package.module:callable', got {shorten(value)!r}")
    return value


def _metric_name(value: str) -> str:
    if not METRIC_NAME.match(value):
        raise ValueError(f"metric name {shorten(value)!r}: letters, digits and _ (up to 40)")
    return value


Spec = Annotated[str, Field(max_length=300), AfterValidator(_spec)]
MetricName = Annotated[str, AfterValidator(_metric_name)]


class CustomConfig(TaskConfig):
    name: Literal["custom"] = "custom"
    loss: Spec
    metrics: dict[MetricName, Spec] = Field(min_length=1, max_length=32, description="name: module:callable")
    primary: str = Field(max_length=40, description="the key of `metrics` that decides")
    higher_is_better: bool
    baseline: Spec | None = None

    @model_validator(mode="after")
    def _primary_is_a_metric(self) -> CustomConfig:
        if self.primary not in self.metrics:
            names = ", ".join(self.metrics)
            raise ValueError(f"primary {shorten(self.primary)!r} is not a key of metrics ({shorten(names)})")
        return self


def _number(value: Any, field: str) -> float:
    """A user callable's result as a float, or a UserError naming `field`."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    try:
        found = float(value) if not isinstance(value, bool | str | bytes | torch.Tensor) else None
    except Exception:  # the user's object has a __float__ that fails
        found = None
    if found is None:
        what = shape_text(value) if isinstance(value, torch.Tensor) else type(value).__name__
        raise UserError(f"{field}: returned {what}, not a number")
    if math.isnan(found):
        raise UserError(f"{field}: returned NaN")
    return found


class _Gathered(Meter):
    def __init__(self, metrics: dict[str, Callable[..., Any]]) -> None:
        self.metrics = metrics
        self.outputs: list[torch.Tensor] = []
        self.targets: list[torch.Tensor] = []

    def add(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        self.outputs.append(outputs.detach().cpu())
        self.targets.append(targets.detach().cpu())

    def result(self) -> dict[str, float]:
        if not self.outputs:
            raise UserError("task.metrics: the split has no samples to measure")
        outputs, targets = torch.cat(self.outputs), torch.cat(self.targets)
        found = {}
        for name, metric in self.metrics.items():
            with user_code(f"task.metrics.{name}"):
                value = metric(outputs, targets)
            found[name] = _number(value, f"task.metrics.{name}")
        return found


class Custom(Task):
    """Call `bind(folders)` before anything else: it imports the callables."""

    config_class = CustomConfig
    primary = "custom"  # per recipe: `config.primary`, set in __init__
    short = "custom"
    default_max_drop = 0.0  # the metric's unit is the user's: set validate.max_metric_drop

    def __init__(self, config: CustomConfig) -> None:
        super().__init__(config)
        self.primary = config.primary
        self.short = config.primary
        self.higher_is_better = config.higher_is_better
        self._loss: Callable[..., Any] | None = None
        self._metrics: dict[str, Callable[..., Any]] = {}
        self._baseline: Callable[..., Any] | None = None

    def bind(self, folders: list[Path]) -> Custom:
        """Import the loss, metrics and baseline (the recipe's folder first); UserError naming the field."""
        config = self.config
        self._loss = import_callable(config.loss, folders, "task.loss")
        self._metrics = {
            name: import_callable(spec, folders, f"task.metrics.{name}")
            for name, spec in config.metrics.items()
        }
        if config.baseline is not None:
            self._baseline = import_callable(config.baseline, folders, "task.baseline")
        return self

    def _bound(self) -> Callable[..., Any]:
        if self._loss is None:
            raise RuntimeError("Custom task used before bind(folders) imported its callables")
        return self._loss

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        fn = self._bound()
        with user_code("task.loss"):
            found = fn(outputs, targets)
        if not isinstance(found, torch.Tensor) or found.numel() != 1 or not found.dtype.is_floating_point:
            what = shape_text(found) if isinstance(found, torch.Tensor) else type(found).__name__
            raise UserError(f"task.loss: returned {what}, not a scalar float tensor")
        return found.reshape(())

    def meter(self) -> Meter:
        self._bound()
        return _Gathered(self._metrics)

    def targets(self, y: torch.Tensor, where: str) -> torch.Tensor:
        if y.dtype == torch.bool or y.dtype.is_complex:
            self.refuse(where, f"targets are {shape_text(y)}; a custom task reads int or float targets")
        return y

    def output_size(self, train_y: torch.Tensor, test_y: torch.Tensor, declared: int | None) -> int:
        if train_y.dtype.is_floating_point:
            return declared_width(self, math.prod(train_y.shape[1:]), declared, "outputs per sample")
        found = max(int(train_y.max()) if train_y.numel() else 0, int(test_y.max()) if test_y.numel() else 0)
        return declared_width(self, found + 1, declared, "classes")

    def baseline(self, train_y: torch.Tensor, test_y: torch.Tensor, width: int) -> float:
        self._bound()
        if self._baseline is None:
            return -math.inf if self.higher_is_better else math.inf
        with user_code("task.baseline"):
            value = self._baseline(train_y, test_y)
        return _number(value, "task.baseline")
