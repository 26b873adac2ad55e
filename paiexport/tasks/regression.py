"""Regression: mse | l1 | huber on float targets of any shape; R² (primary), MAE, RMSE.

R² is averaged over the target's columns (each column's 1 - SSE/SST, as scikit-learn's
`r2_score` with `uniform_average`). Baseline: predicting the training mean, whose R² on the
test split is at most 0; a model "at baseline" scores at most `BASELINE_MARGIN` above 0 (or
above that baseline, whichever is higher). With `standardize`, the model learns targets
standardized by the training mean and std (recorded in the ONNX metadata as
`paiexport.target_mean`/`target_std`); metrics are in the targets' own units.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Literal

import torch

from paiexport.tasks.base import Meter, Task, TaskConfig, require_float

BASELINE_MARGIN = 0.01


class RegressionLoss(StrEnum):
    mse = "mse"
    l1 = "l1"
    huber = "huber"


class RegressionConfig(TaskConfig):
    name: Literal["regression"] = "regression"
    loss: RegressionLoss = RegressionLoss.mse
    standardize: bool = False


def _columns(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(len(t), -1).to(torch.float64)


class _Sums(Meter):
    def __init__(self, task: Regression) -> None:
        self.task = task
        self.n = 0
        self.shift: torch.Tensor | None = None  # the first target: sums of y - shift do not cancel
        self.sum_y = self.sum_y2 = self.sse = self.sae = 0.0

    def add(self, outputs: torch.Tensor, targets: torch.Tensor) -> None:
        pred, y = _columns(self.task.predictions(outputs, targets)), _columns(targets)
        err = pred - y
        if self.shift is None and len(y):
            self.shift = y[0].clone()
        centred = y - (self.shift if self.shift is not None else 0.0)
        self.n += len(y)
        self.sum_y = self.sum_y + centred.sum(0)
        self.sum_y2 = self.sum_y2 + (centred * centred).sum(0)
        self.sse = self.sse + (err * err).sum(0)
        self.sae = self.sae + err.abs().sum(0)

    def result(self) -> dict[str, float]:
        n = max(self.n, 1)
        sst = torch.as_tensor(self.sum_y2 - self.sum_y**2 / n)
        sse = torch.as_tensor(self.sse)
        r2 = torch.where(sst > 0, 1.0 - sse / sst.clamp_min(1e-300), torch.zeros_like(sst))
        values = sse.numel() * n
        return {
            "r2": float(r2.mean()),
            "mae": float(torch.as_tensor(self.sae).sum()) / values,
            "rmse": math.sqrt(float(sse.sum()) / values),
        }


class Regression(Task):
    config_class = RegressionConfig
    primary = "r2"
    short = "r2"
    default_max_drop = 0.02  # R²

    def __init__(self, config: RegressionConfig) -> None:
        super().__init__(config)
        self.mean: torch.Tensor | None = None
        self.std: torch.Tensor | None = None

    def fit(self, train_y: torch.Tensor) -> None:
        """The training targets' mean and std, when `standardize` asks for them."""
        if self.config.standardize:
            cols = _columns(train_y)
            self.mean = cols.mean(0).to(torch.float32)
            self.std = cols.std(0, correction=0).clamp_min(1e-12).to(torch.float32)

    def _shaped(self, stat: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return stat.reshape(1, *like.shape[1:]) if like.ndim > 1 else stat.reshape(())

    def predictions(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Outputs in the targets' shape and units."""
        out = outputs.reshape(targets.shape).float()
        if self.mean is None or self.std is None:
            return out
        return out * self._shaped(self.std, targets) + self._shaped(self.mean, targets)

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        out = outputs.reshape(targets.shape)
        if self.mean is not None and self.std is not None:
            targets = (targets - self._shaped(self.mean, targets)) / self._shaped(self.std, targets)
        fn = {
            RegressionLoss.mse: torch.nn.functional.mse_loss,
            RegressionLoss.l1: torch.nn.functional.l1_loss,
            RegressionLoss.huber: torch.nn.functional.huber_loss,
        }[self.config.loss]
        return fn(out, targets)

    def meter(self) -> Meter:
        return _Sums(self)

    def targets(self, y: torch.Tensor, where: str) -> torch.Tensor:
        return require_float(self, y, where, "regression targets")

    def output_size(self, train_y: torch.Tensor, test_y: torch.Tensor, declared: int | None) -> int:
        return math.prod(train_y.shape[1:])

    def check_outputs(self, outputs: torch.Tensor, targets: torch.Tensor, where: str) -> None:
        if outputs.shape[0] != targets.shape[0] or outputs[0].numel() != targets[0].numel():
            self.refuse(
                where, f"output of shape {tuple(outputs.shape)} for targets of shape {tuple(targets.shape)}"
            )

    def baseline(self, train_y: torch.Tensor, test_y: torch.Tensor, width: int) -> float:
        mean = _columns(train_y).mean(0)
        meter = _Sums(Regression(RegressionConfig()))
        meter.add(mean.expand(len(test_y), -1).reshape(test_y.shape), test_y)
        return meter.result()["r2"]

    def at_baseline(self, value: float, baseline: float) -> bool:
        return value <= max(baseline, 0.0) + BASELINE_MARGIN

    def restore(self, metadata: dict[str, str]) -> None:
        """The standardization a file records (`target_mean`/`target_std`): its outputs are in
        standardized units, and metrics are taken in the targets' own."""
        try:
            mean = [float(v) for v in metadata["target_mean"].split(",")]
            std = [float(v) for v in metadata["target_std"].split(",")]
        except (KeyError, ValueError):
            return
        self.mean, self.std = torch.tensor(mean), torch.tensor(std)

    def metadata(self) -> dict[str, list[float]]:
        """`target_mean`/`target_std` for the ONNX metadata (standardized targets only)."""
        if self.mean is None or self.std is None:
            return {}
        return {"target_mean": self.mean.tolist(), "target_std": self.std.tolist()}
