"""Datasets as in-memory tensors with seeded train/val/test splits.

Every bundled dataset fits in memory, so batches are cut from tensors directly:
faster than a DataLoader on 2 cores, and trivially deterministic.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum

import numpy as np
import torch

from paiexport.errors import UserError


class DatasetName(str, Enum):
    digits = "digits"
    mnist1d = "mnist1d"
    synthetic = "synthetic"


@dataclass(frozen=True)
class Split:
    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)

    def batches(
        self, batch_size: int, generator: torch.Generator | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (x, y) batches; shuffled when a generator is given, in order otherwise."""
        n = len(self)
        order = torch.randperm(n, generator=generator) if generator is not None else None
        for start in range(0, n, batch_size):
            if order is None:
                yield self.x[start : start + batch_size], self.y[start : start + batch_size]
            else:
                idx = order[start : start + batch_size]
                yield self.x[idx], self.y[idx]


@dataclass(frozen=True)
class DataSplits:
    train: Split
    val: Split
    test: Split
    input_shape: tuple[int, ...]  # one sample, without the batch dimension
    num_classes: int


def load_data(
    name: DatasetName,
    *,
    seed: int,
    val_fraction: float,
    synthetic_samples: int = 512,
    synthetic_shape: tuple[int, ...] = (1, 40),
) -> DataSplits:
    """Load a bundled dataset; the train/val split (and digits' test split) follow `seed`."""
    if name is DatasetName.digits:
        x, y, x_test, y_test = _digits(seed)
    elif name is DatasetName.mnist1d:
        x, y, x_test, y_test = _mnist1d()
    elif name is DatasetName.synthetic:
        x, y, x_test, y_test = _synthetic(seed, synthetic_samples, synthetic_shape)
    else:  # pragma: no cover - the enum is exhaustive
        raise UserError(f"data.name: unknown dataset {name!r}")
    x_train, y_train, x_val, y_val = _split_off(x, y, val_fraction, seed)
    return DataSplits(
        train=Split(x_train, y_train),
        val=Split(x_val, y_val),
        test=Split(_f32(x_test), _i64(y_test)),
        input_shape=tuple(x.shape[1:]),
        num_classes=int(max(y.max(), y_test.max()) + 1),
    )


def _f32(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


def _i64(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.int64))


def _split_off(
    x: np.ndarray, y: np.ndarray, fraction: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    order = np.random.default_rng(seed).permutation(len(y))
    n_val = round(fraction * len(y))
    val, train = order[:n_val], order[n_val:]
    if len(train) == 0:
        raise UserError(f"data.val_fraction: {fraction} leaves no training samples")
    return _f32(x[train]), _i64(y[train]), _f32(x[val]), _i64(y[val])


def _digits(seed: int) -> tuple[np.ndarray, ...]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.data / 16.0).reshape(-1, 1, 8, 8)
    y = bunch.target
    order = np.random.default_rng(seed + 1).permutation(len(y))
    n_test = len(y) // 5
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]


@functools.cache  # ~1.3 s to generate; callers index (copy) and never modify the arrays
def _mnist1d() -> tuple[np.ndarray, ...]:
    """MNIST-1D generated procedurally with the package's default arguments (never downloaded)."""
    from mnist1d.data import get_dataset_args, make_dataset

    state = np.random.get_state()  # make_dataset reseeds numpy's global RNG; leave it as found
    try:
        data = make_dataset(get_dataset_args())
    finally:
        np.random.set_state(state)
    return data["x"][:, None, :], data["y"], data["x_test"][:, None, :], data["y_test"]


def _synthetic(seed: int, n: int, shape: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    """Gaussian blobs around 4 class means: learnable in a few steps, for tests."""
    rng = np.random.default_rng(seed + 2)
    num_classes = 4
    means = rng.normal(0.0, 1.0, size=(num_classes, *shape))
    y = rng.integers(0, num_classes, size=n)
    x = means[y] + 0.5 * rng.normal(size=(n, *shape))
    n_test = n // 4
    return x[n_test:], y[n_test:], x[:n_test], y[:n_test]
