"""What a task is: its loss, its metrics (one of them primary), the targets it reads, its baseline.

Every stage asks the task rather than assuming classification: the training loop and the
methods take its `loss`, evaluation and validation its `meter`, the data loaders its
`targets` check, the verdict its `baseline`. One module per task; `tasks.TASKS` lists them.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from pydantic import Field

from paiexport.config import StrictModel
from paiexport.errors import UserError, shorten

OUTPUT = Field(
    default=None,
    max_length=200,
    description="the model output the task reads (a name of a dict output, or an index); default: the first",
)


class TaskConfig(StrictModel):
    name: str
    output: str | None = OUTPUT


class Meter(ABC):
    """Accumulates a split batch by batch; `result` gives every metric over the whole split."""

    @abstractmethod
    def add(self, outputs: torch.Tensor, targets: torch.Tensor) -> None: ...

    @abstractmethod
    def result(self) -> dict[str, float]: ...


class Task(ABC):
    """A task, configured by its recipe section (`task:`)."""

    config_class: ClassVar[type[TaskConfig]]
    primary: ClassVar[str]  # the metric `checkpoint: best`, verdicts, gates and `auto` use
    higher_is_better: ClassVar[bool] = True
    short: ClassVar[str]  # the primary metric in a line of text: "val acc", "val r2", "val ppl"
    percent: ClassVar[bool] = False  # shown as a percentage (accuracy, F1, IoU)
    default_max_drop: ClassVar[float]  # validate.max_metric_drop when unset, in the metric's unit
    baseline_needs_train: ClassVar[bool] = True  # `baseline` reads the training targets
    drop_scale: ClassVar[float] = 1.0  # a drop's unit: 100 turns a fraction into points
    relative_drop: ClassVar[bool] = False  # a drop as a fraction of the reference (perplexity)
    targets_are_inputs: ClassVar[bool] = False  # a dataset may give the inputs as targets (tokens)

    def __init__(self, config: TaskConfig) -> None:
        self.config = config

    @property
    def name(self) -> str:
        return self.config.name

    def pick(self, outputs: Any) -> torch.Tensor:
        """The output the task reads (`task.output`) of a model that returns a tuple or a dict."""
        chosen = self.config.output
        if isinstance(outputs, torch.Tensor):
            return outputs
        if isinstance(outputs, dict):
            key = chosen if chosen is not None else next(iter(outputs), None)
            if key not in outputs:
                raise UserError(
                    f"task.output: the model has no output {shorten(key)!r} ({', '.join(outputs)})"
                )
            return outputs[key]
        if isinstance(outputs, tuple | list) and outputs:
            index = 0 if chosen is None else int(chosen) if chosen.isdigit() else -1
            if not 0 <= index < len(outputs):
                raise UserError(
                    f"task.output: {shorten(chosen)!r} is not an index of the model's {len(outputs)} outputs"
                )
            return outputs[index]
        raise UserError(f"task: the model returned a {type(outputs).__name__}, not a tensor, tuple or dict")

    @abstractmethod
    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """A scalar to minimise, averaged over the batch."""

    @abstractmethod
    def meter(self) -> Meter: ...

    @abstractmethod
    def targets(self, y: torch.Tensor, where: str) -> torch.Tensor:
        """`y` as the loss reads it, or a UserError naming `task.name` and `where`: never a silent cast."""

    @abstractmethod
    def output_size(self, train_y: torch.Tensor, test_y: torch.Tensor, declared: int | None) -> int:
        """The width of the model's last output dimension the targets ask for (classes, labels, ...)."""

    @abstractmethod
    def baseline(self, train_y: torch.Tensor, test_y: torch.Tensor, width: int) -> float:
        """The primary metric on the test targets of a useless model fit on the training targets."""

    def check_outputs(self, outputs: torch.Tensor, targets: torch.Tensor, where: str) -> None:
        """Refuse outputs this task cannot read against these targets (one line naming the shape)."""
        if outputs.shape[0] != targets.shape[0]:
            self.refuse(where, f"output of shape {tuple(outputs.shape)} for {targets.shape[0]} targets")

    def at_baseline(self, value: float, baseline: float) -> bool:
        """No better than the baseline: the verdict's "at baseline" (a useless model)."""
        return value <= baseline if self.higher_is_better else value >= baseline

    def drop(self, reference: float, value: float) -> float:
        """How much worse `value` is than `reference` in the unit of `validate.max_metric_drop`
        (negative: better); see `metric_drop`."""
        return metric_drop(reference, value, self.drop_rule)

    @property
    def drop_rule(self) -> DropRule:
        return DropRule(self.higher_is_better, self.drop_scale, self.relative_drop)

    def metrics_match(self, a: dict[str, float], b: dict[str, float], samples: int) -> bool:
        """A float file's primary metric equals PyTorch's up to float noise."""
        x, y = a[self.primary], b[self.primary]
        return abs(x - y) <= 1e-4 * max(1.0, abs(y))

    def refuse(self, where: str, what: str) -> None:
        raise UserError(f"task.name {self.name}: {where}: {shorten(what, 160)}")

    def describe(self) -> dict[str, Any]:
        """report.json `task` (with `baseline` added by the run)."""
        return {
            "name": self.name,
            "primary": self.primary,
            "higher_is_better": self.higher_is_better,
            "drop_scale": self.drop_scale,
            "relative_drop": self.relative_drop,
            "percent": self.percent,
        }


@dataclass(frozen=True)
class DropRule:
    """How a metric's drop is measured: its direction, its unit, absolute or relative."""

    higher_is_better: bool = True
    scale: float = 1.0
    relative: bool = False


def metric_drop(reference: float, value: float, rule: DropRule) -> float:
    """How much worse `value` is than `reference` (negative: better), the one rule every limit
    uses (`validate.max_metric_drop`, the `max_metric_drop` gate, the deploy choice): the
    difference in the metric's direction, or with `relative` as a fraction of `reference`
    (perplexity 5.25 vs 5.0: 0.05), times `scale` (classification: 100, points of accuracy)."""
    worse = reference - value if rule.higher_is_better else value - reference
    if rule.relative:
        worse = worse / abs(reference) if reference else math.inf * (worse > 0)
    return worse * rule.scale


def shape_text(t: torch.Tensor) -> str:
    return f"{str(t.dtype).removeprefix('torch.')}{tuple(t.shape)}"


def require_integer(task: Task, y: torch.Tensor, where: str, what: str) -> torch.Tensor:
    if y.dtype.is_floating_point or y.dtype.is_complex or y.dtype == torch.bool:
        task.refuse(where, f"targets are {shape_text(y)}; {what} are integers (nothing is cast)")
    return y.to(torch.int64)


def require_float(task: Task, y: torch.Tensor, where: str, what: str) -> torch.Tensor:
    if not y.dtype.is_floating_point:
        task.refuse(where, f"targets are {shape_text(y)}; {what} are floats (nothing is cast)")
    if not bool(torch.isfinite(y).all()):
        task.refuse(where, "targets hold NaN/inf")
    return y.to(torch.float32)


def in_range(task: Task, y: torch.Tensor, where: str, limit: int | None, ignore: int | None = None) -> None:
    """Class indices in [0, limit) (`ignore` allowed anywhere)."""
    kept = y if ignore is None else y[y != ignore]
    if not kept.numel():
        return
    low, high = int(kept.min()), int(kept.max())
    if low < 0 or (limit is not None and high >= limit):
        bad = low if low < 0 else high
        task.refuse(where, f"target {bad} outside [0, {limit or 'inf'})")


def declared_width(task: Task, found: int, declared: int | None, what: str) -> int:
    """`declared` (data.num_classes) when set, else `found`; a declared width below `found` is refused."""
    if declared is not None and declared < found:
        task.refuse("data.num_classes", f"{declared} declared, but the targets need {found} {what}")
    return found if declared is None else declared
