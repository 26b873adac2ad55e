"""Multi-label classification: binary cross-entropy with logits on 0/1 target rows (N, L).

Metrics over the whole split, a label predicted when `sigmoid(logit) >= threshold`:
- `micro_f1` (primary): 2 TP / (2 TP + FP + FN) with the counts summed over every label;
- `macro_f1`: the mean over all L labels of each label's F1, a label with no positive target
  and no positive prediction counting 0 (scikit-learn's `f1_score(average="macro",
  zero_division=0)`; micro F1 is 0 when there is nothing to count either);
- `map`: the mean over the labels with at least one positive target of each label's average
  precision, as scikit-learn's `average_precision_score` (ties in score form one step);
  0 when no label has a positive target.

Baseline: predict each label positive iff its training prevalence is at least `threshold`;
its micro F1 on the test targets.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from paiexport.tasks.base import Meter, Task, TaskConfig, shape_text

FLIPS_PER_DECISIONS = 1000  # metrics_match: one decision per thousand may flip near the threshold


class MultilabelConfig(TaskConfig):
    name: Literal["multilabel"] = "multilabel"
    threshold: float = Field(
        default=0.5, gt=0.0, lt=1.0, description="sigmoid(logit) >= threshold: predicted"
    )


def f1_scores(predicted: torch.Tensor, targets: torch.Tensor) -> tuple[float, float]:
    """(micro F1, macro F1) of boolean predictions against 0/1 targets, both (N, L)."""
    positive = targets.bool()
    tp = (predicted & positive).sum(0).to(torch.float64)
    fp = (predicted & ~positive).sum(0).to(torch.float64)
    fn = (~predicted & positive).sum(0).to(torch.float64)
    counted = 2 * tp + fp + fn
    per_label = torch.where(counted > 0, 2 * tp / counted.clamp_min(1), torch.zeros_like(tp))
    micro = float(2 * tp.sum() / counted.sum()) if counted.sum() > 0 else 0.0
    return micro, float(per_label.mean()) if per_label.numel() else 0.0


def mean_average_precision(scores: torch.Tensor, targets: torch.Tensor) -> float:
    """Mean over labels with a positive of `average_precision_score` (scores, targets: (N, L)).

    AP = sum over the distinct score thresholds, highest first, of (recall step) x precision;
    every positive of a run of equal scores takes the precision at the run's end.
    """
    order = scores.to(torch.float64).argsort(dim=0, descending=True, stable=True)
    s = scores.to(torch.float64).gather(0, order)
    y = targets.to(torch.float64).gather(0, order)
    n = len(s)
    rank = torch.arange(1, n + 1, dtype=torch.float64)[:, None]
    precision = y.cumsum(0) / rank
    run_end = torch.ones_like(s, dtype=torch.bool)
    run_end[:-1] = s[:-1] != s[1:]
    index = torch.where(run_end, torch.arange(n)[:, None], torch.full_like(order, n))
    end = index.flip(0).cummin(0).values.flip(0)  # the last row of each row's run of equal scores
    positives = y.sum(0)
    labelled = positives > 0
    if not bool(labelled.any()):
        return 0.0
    ap = (y * precision.gather(0, end)).sum(0)[labelled] / positives[labelled]
    return float(ap.mean())


class _Scores(Meter):
    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.scores: list[torch.Tensor] = []
        self.labels: list[torch.Tensor] = []

    def add(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        self.scores.append(outputs.detach().float().cpu())
        self.labels.append(targets.detach().cpu().bool())

    def result(self) -> dict[str, float]:
        if not self.scores:
            return {"micro_f1": 0.0, "macro_f1": 0.0, "map": 0.0}
        scores, labels = torch.cat(self.scores), torch.cat(self.labels)
        micro, macro = f1_scores(torch.sigmoid(scores) >= self.threshold, labels)
        return {"micro_f1": micro, "macro_f1": macro, "map": mean_average_precision(scores, labels)}


class Multilabel(Task):
    config_class = MultilabelConfig
    primary = "micro_f1"
    short = "f1"
    percent = True
    default_max_drop = 0.01  # a fraction of micro F1, as classification's accuracy (1 point)

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.binary_cross_entropy_with_logits(outputs, targets.to(outputs.dtype))

    def meter(self) -> Meter:
        return _Scores(self.config.threshold)

    def targets(self, y: torch.Tensor, where: str) -> torch.Tensor:
        if y.dtype.is_complex:
            self.refuse(where, f"targets are {shape_text(y)}; multi-label targets are 0/1")
        if y.ndim != 2:
            self.refuse(
                where, f"targets have shape {tuple(y.shape)}; one 0/1 row of labels per sample (N, L)"
            )
        other = y[(y != 0) & (y != 1)]
        if other.numel():
            found = f"targets are {shape_text(y)} holding {other[0].item()}"
            self.refuse(where, f"{found}; labels are 0 or 1 (nothing is rounded)")
        return y.to(torch.float32)

    def output_size(self, train_y: torch.Tensor, test_y: torch.Tensor, declared: int | None) -> int:
        if train_y.shape[1:] != test_y.shape[1:]:
            found = f"{tuple(test_y.shape[1:])} labels per sample, training {tuple(train_y.shape[1:])}"
            self.refuse("test targets", found)
        labels = train_y.shape[1]
        if declared is not None and declared != labels:
            self.refuse("data.num_classes", f"{declared} declared, but the targets have {labels} labels")
        return labels

    def check_outputs(self, outputs: torch.Tensor, targets: torch.Tensor, where: str) -> None:
        if outputs.shape != targets.shape:
            shape, needed = tuple(outputs.shape), tuple(targets.shape)
            self.refuse(where, f"output of shape {shape}; needs one logit per label, {needed}")

    def baseline(self, train_y: torch.Tensor, test_y: torch.Tensor, width: int) -> float:
        prevalence = train_y.to(torch.float64).mean(0)
        predicted = (prevalence >= self.config.threshold).expand(test_y.shape)
        return f1_scores(predicted, test_y)[0]

    def metrics_match(self, a: dict[str, float], b: dict[str, float], samples: int) -> bool:
        """Micro F1 equal up to one decision per thousand samples flipped at the threshold.

        A flip moves 2 TP + FP + FN by at most 2 and TP by at most 1, so micro F1 by at most
        2 / (2 TP + FP + FN); that count is taken to be at least `samples` (one label or
        prediction per sample on average).
        """
        flips = max(1, samples // FLIPS_PER_DECISIONS)
        return abs(a["micro_f1"] - b["micro_f1"]) <= 2 * flips / max(samples, 1) + 1e-9
