"""A task of your own: quantile regression with the pinball loss, its metrics and its baseline.

The model predicts three numbers per sample, the 10%, 50% and 90% quantiles of the target
given the input (three outputs: `data.num_classes: 3` in the recipe). Everything the recipe's
`task:` section names lives here:
- `loss(outputs, targets)`: the pinball (quantile) loss, averaged over samples and quantiles;
- metrics over a whole split: `pinball` (the primary metric, lower is better), `coverage`
  (the share of targets inside [q10, q90]: 0.8 when the interval is calibrated) and `width`
  (the interval's mean width: narrower is sharper, at the same coverage);
- `baseline(train_targets, test_targets)`: the pinball loss on the test targets of a useless
  model, one that predicts the training targets' quantiles whatever the input.

The data is generated with a seeded numpy Generator (nothing downloaded): 8 inputs uniform
in [-1, 1], a target `sin(pi x0) + x1^2 + x2 / 2` plus Gaussian noise whose spread grows
with |x3|, so a good interval is narrow where x3 is near 0 and wide where it is not.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import TensorDataset

QUANTILES = (0.1, 0.5, 0.9)
FEATURES, TRAIN, TEST = 8, 2000, 500


def _levels(outputs: torch.Tensor) -> torch.Tensor:
    return torch.tensor(QUANTILES, dtype=outputs.dtype, device=outputs.device)


def loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Pinball loss of predictions (N, 3) for targets (N,): max(q e, (q - 1) e), e = y - pred."""
    error = targets.reshape(-1, 1).to(outputs.dtype) - outputs
    q = _levels(outputs)
    return torch.maximum(q * error, (q - 1) * error).mean()


def pinball(outputs: torch.Tensor, targets: torch.Tensor) -> float:
    return float(loss(outputs.double(), targets.double()))


def coverage(outputs: torch.Tensor, targets: torch.Tensor) -> float:
    """The share of targets inside [q10, q90]."""
    inside = (targets >= outputs[:, 0]) & (targets <= outputs[:, 2])
    return float(inside.double().mean())


def width(outputs: torch.Tensor, targets: torch.Tensor) -> float:
    """The mean width q90 - q10 of the predicted intervals."""
    return float((outputs[:, 2] - outputs[:, 0]).double().mean())


def baseline(train_targets: torch.Tensor, test_targets: torch.Tensor) -> float:
    """The pinball loss of predicting the training quantiles for every test sample."""
    constant = torch.quantile(train_targets.double(), torch.tensor(QUANTILES, dtype=torch.float64))
    return pinball(constant.expand(len(test_targets), -1), test_targets)


def generate(count: int, seed: int) -> TensorDataset:
    """`count` inputs (N, 8) and targets (N,), float32."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, size=(count, FEATURES))
    mean = np.sin(np.pi * x[:, 0]) + x[:, 1] ** 2 + 0.5 * x[:, 2]
    spread = 0.05 + 0.5 * np.abs(x[:, 3])
    y = mean + spread * rng.standard_normal(count)
    return TensorDataset(torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32))


def datasets() -> tuple[TensorDataset, TensorDataset]:
    """2,000 training and 500 test samples, from different seeds."""
    return generate(TRAIN, seed=0), generate(TEST, seed=1)
