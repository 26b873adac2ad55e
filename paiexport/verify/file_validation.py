"""One file's validation in the task's terms: what broke, whether it may ship, and why."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from paiexport.tasks.base import DropRule, metric_drop
from paiexport.verify.rules import over_limit_reason, within_drop_limit


@dataclass
class FileValidation:
    """One file checked against PyTorch in the task's terms (`primary` is the task's primary metric)."""

    variant: str
    checker: bool
    loads: bool
    max_abs_diff: float
    parity: bool
    metrics: dict[str, float]
    metrics_torch: dict[str, float]
    metric_match: bool
    error: str | None = None
    parity_required: bool = True  # False for lossy (int8) files: judged by their metric drop
    baseline: float = 0.0  # the primary metric of a useless model (classification: chance level)
    sparsity_mismatch: list[str] = field(default_factory=list)  # weights whose zeros differ from the masks
    max_metric_drop: float = 1.0  # in the metric's unit (points for accuracy)
    task: str = "classification"
    primary: str = "accuracy"
    higher_is_better: bool = True
    drop_scale: float = 100.0  # the task's drop rule (tasks.base.metric_drop): classification's points
    relative_drop: bool = False

    @property
    def metric(self) -> float:
        return self.metrics.get(self.primary, 0.0)

    @property
    def metric_torch(self) -> float:
        return self.metrics_torch.get(self.primary, 0.0)

    @property
    def accuracy(self) -> float:
        """The primary metric (classification's accuracy); deploy and gates read it."""
        return self.metric

    @property
    def accuracy_torch(self) -> float:
        return self.metric_torch

    @property
    def chance_level(self) -> float:
        """Classification's name for the baseline."""
        return self.baseline

    @property
    def at_baseline(self) -> bool:
        return self.metric <= self.baseline if self.higher_is_better else self.metric >= self.baseline

    @property
    def broken_checks(self) -> list[str]:
        """The failed correctness checks: a file with any is broken (exit 1), not merely lossy.

        Classification names them as it always has ("accuracy", "chance_level")."""
        classification = self.task == "classification"
        failed = {
            "checker": not self.checker,
            "load": self.checker and not self.loads,
            "parity": self.loads and self.parity_required and not self.parity,
            "accuracy" if classification else "metric": (
                self.loads and self.parity_required and not self.metric_match
            ),
            "chance_level" if classification else "baseline": self.loads and self.at_baseline,
            "sparsity": bool(self.sparsity_mismatch),
        }
        return [name for name, bad in failed.items() if bad]

    @property
    def passed(self) -> bool:
        return not self.broken_checks

    @property
    def metric_drop(self) -> float:
        """How much worse than PyTorch, in the limit's unit (points for accuracy; negative: better)."""
        rule = DropRule(self.higher_is_better, self.drop_scale, self.relative_drop)
        return metric_drop(self.metric_torch, self.metric, rule)

    @property
    def accuracy_drop(self) -> float:
        return self.metric_drop

    def within_limit(self, max_metric_drop: float) -> bool:
        """Float files match PyTorch (a correctness check); a lossy file may lose the limit."""
        return self.parity_required or within_drop_limit(self.metric_drop, max_metric_drop)

    @property
    def deployable(self) -> bool:
        return self.passed and self.within_limit(self.max_metric_drop)

    @property
    def unit(self) -> str:
        """The unit of `metric_drop` and its limit: points of accuracy, a fraction of the metric
        (perplexity), else the metric itself."""
        if self.task == "classification":
            return "pt"
        return f"× {self.primary}" if self.relative_drop else self.primary

    @property
    def reason(self) -> str:
        if not self.passed:
            return f"broken: {', '.join(self.broken_checks)}"
        if self.parity_required:
            return "matches PyTorch"
        limit = self.max_metric_drop
        if not self.deployable:
            return over_limit_reason(self.metric_drop, limit, self.unit)
        if self.task == "classification":
            return f"{(self.metric - self.metric_torch) * 100:+.1f} pt vs PyTorch (limit {limit})"
        return f"{-self.metric_drop:+.4g} {self.unit} vs PyTorch (limit {limit})"

    def to_dict(self) -> dict:
        data = asdict(self)
        if self.task == "classification":  # report.json keys of classification, as before
            data |= {
                "accuracy": self.metric,
                "accuracy_torch": self.metric_torch,
                "accuracy_match": self.metric_match,
                "chance_level": self.baseline,
                "max_accuracy_drop": self.max_metric_drop,
            }
        return {
            **data,
            "metric": self.metric,
            "metric_torch": self.metric_torch,
            "passed": self.passed,
            "broken_checks": self.broken_checks,
            "deployable": self.deployable,
            "reason": self.reason,
        }


def accuracy_validation(
    variant: str,
    checker: bool,
    loads: bool,
    max_abs_diff: float,
    parity: bool,
    accuracy: float,
    accuracy_torch: float,
    accuracy_match: bool,
    *,
    chance_level: float = 0.0,
    max_accuracy_drop: float = 1.0,
    **rest: object,
) -> FileValidation:
    """A classification file's validation from its accuracies (the fields report.json keeps)."""
    return FileValidation(
        variant,
        checker,
        loads,
        max_abs_diff,
        parity,
        {"accuracy": accuracy},
        {"accuracy": accuracy_torch},
        accuracy_match,
        baseline=chance_level,
        max_metric_drop=max_accuracy_drop,
        **rest,  # type: ignore[arg-type]
    )
