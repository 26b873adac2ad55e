"""Classification: cross-entropy on class indices; top-1 accuracy (primary) and top-5.

Baseline: the majority class, plus three standard errors (`chance_level`): a guesser beats
its expected accuracy by 3 standard errors 1 time in 740.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import Field

from paiexport.tasks.base import Meter, Task, TaskConfig, in_range, require_integer

CHANCE_SIGMAS = 3.0


def chance_level(labels: torch.Tensor, num_classes: int) -> float:
    """The accuracy at or below which a classifier is no better than guessing.

    The best constant guess scores `p = max(1 / num_classes, share of the most frequent test
    label)`; on `n` test samples a guesser's accuracy has standard error `sqrt(p (1 - p) / n)`.
    Chance level is `p` plus `CHANCE_SIGMAS` standard errors (MNIST-1D's test split: 13.52%).
    """
    labels = torch.as_tensor(labels)
    n = max(len(labels), 1)
    majority = int(torch.bincount(labels).max()) / n if len(labels) else 0.0
    p = max(1.0 / max(num_classes, 1), majority)
    return p + CHANCE_SIGMAS * math.sqrt(p * (1.0 - p) / n)


class ClassificationConfig(TaskConfig):
    name: Literal["classification"] = "classification"
    label_smoothing: float = Field(default=0.0, ge=0.0, lt=1.0)


class _Counts(Meter):
    def __init__(self) -> None:
        self.n = self.top1 = self.top5 = 0
        self.classes = 0

    def add(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        self.n += len(targets)
        self.classes = outputs.shape[1]
        self.top1 += int((outputs.argmax(dim=1) == targets).sum())
        if self.classes >= 5:
            top = outputs.topk(5, dim=1).indices
            self.top5 += int((top == targets[:, None]).any(dim=1).sum())

    def result(self) -> dict[str, float]:
        n = max(self.n, 1)
        found = {"accuracy": self.top1 / n}
        if self.classes >= 5:
            found["top5"] = self.top5 / n
        return found


class Classification(Task):
    config_class = ClassificationConfig
    primary = "accuracy"
    short = "acc"
    percent = True
    default_max_drop = 1.0  # points (validate.max_accuracy_drop is the recipe's value)
    drop_scale = 100.0  # points of accuracy
    baseline_needs_train = False

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        smoothing = self.config.label_smoothing
        return torch.nn.functional.cross_entropy(outputs, targets, label_smoothing=smoothing)

    def meter(self) -> Meter:
        return _Counts()

    def targets(self, y: torch.Tensor, where: str) -> torch.Tensor:
        y = require_integer(self, y, where, "class indices")
        if y.ndim != 1:
            self.refuse(where, f"targets have shape {tuple(y.shape)}; one class index per sample")
        in_range(self, y, where, None)
        return y

    def output_size(self, train_y: torch.Tensor, test_y: torch.Tensor, declared: int | None) -> int:
        found = max(int(train_y.max()), int(test_y.max()) if len(test_y) else 0) + 1
        return declared or found

    def check_outputs(self, outputs: torch.Tensor, targets: torch.Tensor, where: str) -> None:
        if outputs.ndim != 2 or outputs.shape[0] != targets.shape[0]:
            self.refuse(where, f"output of shape {tuple(outputs.shape)}; needs one row of logits per sample")

    def baseline(self, train_y: torch.Tensor, test_y: torch.Tensor, width: int) -> float:
        return chance_level(test_y, width)

    def metrics_match(self, a: dict[str, float], b: dict[str, float], samples: int) -> bool:
        """Same predictions up to float noise: a flipped near-tie per thousand samples is allowed."""
        flipped = abs(a["accuracy"] - b["accuracy"]) * max(samples, 1)  # a count, up to float rounding
        return flipped <= max(1, samples // 1000) + 1e-6
