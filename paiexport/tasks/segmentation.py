"""Semantic segmentation: per-pixel cross-entropy on class maps (N, *spatial), logits (N, C, *spatial).

Pixels whose target is `ignore_index` count nowhere: not in the loss, not in the metrics.
Metrics come from a C x C confusion matrix summed over the whole split:
- `miou` (primary): the mean IoU = TP / (TP + FP + FN) over the classes that occur in the
  targets or the predictions (scikit-learn's `jaccard_score(average="macro")` on the pixels);
- `pixel_accuracy`: the share of counted pixels predicted right.
Both are 0 when no pixel is counted. Baseline: the majority training class predicted
everywhere, its mIoU on the test targets.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from paiexport.tasks.base import Meter, Task, TaskConfig, declared_width, in_range, require_integer

FLIPS_PER_PIXELS = 1000  # metrics_match: one pixel per thousand may flip at an argmax near-tie


class SegmentationConfig(TaskConfig):
    name: Literal["segmentation"] = "segmentation"
    ignore_index: int = Field(default=-100, description="target value of pixels counted nowhere")


def confusion(predicted: torch.Tensor, targets: torch.Tensor, classes: int, ignore: int) -> torch.Tensor:
    """The classes x classes matrix of pixel counts (row: target, column: prediction)."""
    kept = targets != ignore
    t, p = targets[kept].to(torch.int64), predicted[kept].to(torch.int64)
    return torch.bincount(t * classes + p, minlength=classes * classes).reshape(classes, classes)


def scores(matrix: torch.Tensor) -> dict[str, float]:
    """`miou` and `pixel_accuracy` of a confusion matrix."""
    matrix = matrix.to(torch.float64)
    hits = matrix.diagonal()
    union = matrix.sum(0) + matrix.sum(1) - hits
    present = union > 0
    total = float(matrix.sum())
    if not total:
        return {"miou": 0.0, "pixel_accuracy": 0.0}
    return {
        "miou": float((hits[present] / union[present]).mean()),
        "pixel_accuracy": float(hits.sum()) / total,
    }


class _Confusion(Meter):
    def __init__(self, ignore: int) -> None:
        self.ignore = ignore
        self.matrix: torch.Tensor | None = None

    def add(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        classes = outputs.shape[1]
        found = confusion(outputs.detach().argmax(dim=1).cpu(), targets.detach().cpu(), classes, self.ignore)
        self.matrix = found if self.matrix is None else self.matrix + found

    def result(self) -> dict[str, float]:
        return scores(self.matrix if self.matrix is not None else torch.zeros(1, 1))


class Segmentation(Task):
    config_class = SegmentationConfig
    primary = "miou"
    short = "miou"
    percent = True
    default_max_drop = 0.01  # a fraction of mIoU, as classification's accuracy (1 point)

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        ignore = self.config.ignore_index
        if not bool((targets != ignore).any()):  # cross_entropy would give 0 / 0 = NaN
            return outputs.sum() * 0.0
        return torch.nn.functional.cross_entropy(outputs, targets, ignore_index=ignore)

    def meter(self) -> Meter:
        return _Confusion(self.config.ignore_index)

    def targets(self, y: torch.Tensor, where: str) -> torch.Tensor:
        y = require_integer(self, y, where, "class maps")
        if y.ndim < 2:
            self.refuse(where, f"targets have shape {tuple(y.shape)}; one class map per sample (N, *spatial)")
        in_range(self, y, where, None, ignore=self.config.ignore_index)
        return y

    def _top(self, y: torch.Tensor) -> int:
        kept = y[y != self.config.ignore_index]
        return int(kept.max()) if kept.numel() else -1

    def output_size(self, train_y: torch.Tensor, test_y: torch.Tensor, declared: int | None) -> int:
        found = max(self._top(train_y), self._top(test_y)) + 1
        return declared_width(self, max(found, 1), declared, "classes")

    def check_outputs(self, outputs: torch.Tensor, targets: torch.Tensor, where: str) -> None:
        if outputs.ndim != targets.ndim + 1 or outputs.shape[:1] + outputs.shape[2:] != targets.shape:
            shape, needed = tuple(outputs.shape), (targets.shape[0], "C", *targets.shape[1:])
            self.refuse(where, f"output of shape {shape}; needs class logits per pixel, {needed}")

    def baseline(self, train_y: torch.Tensor, test_y: torch.Tensor, width: int) -> float:
        ignore = self.config.ignore_index
        kept = train_y[train_y != ignore]
        majority = int(torch.bincount(kept.flatten(), minlength=width).argmax()) if kept.numel() else 0
        predicted = torch.full_like(test_y, majority)
        return scores(confusion(predicted, test_y, width, ignore))["miou"]

    def metrics_match(self, a: dict[str, float], b: dict[str, float], samples: int) -> bool:
        """Pixel accuracy equal up to one flipped pixel per thousand; mIoU up to a thousandth.

        A pixel whose two best logits nearly tie may change class between PyTorch and a file.
        """
        close = 1.0 / FLIPS_PER_PIXELS + 1e-9
        accuracy = abs(a["pixel_accuracy"] - b["pixel_accuracy"]) <= close
        return accuracy and abs(a["miou"] - b["miou"]) <= close
