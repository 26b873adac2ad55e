"""The three datasets that ship with paiexport (nothing is downloaded): arrays (x, y, x_test, y_test)."""

from __future__ import annotations

import functools

import numpy as np


def digits(seed: int) -> tuple[np.ndarray, ...]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.data / 16.0).reshape(-1, 1, 8, 8)
    y = bunch.target
    order = np.random.default_rng(seed + 1).permutation(len(y))
    n_test = len(y) // 5
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]


@functools.cache  # ~1.3 s to generate; callers index (copy) and never modify the arrays
def mnist1d() -> tuple[np.ndarray, ...]:
    """MNIST-1D generated procedurally with the package's default arguments (never downloaded)."""
    from mnist1d.data import get_dataset_args, make_dataset

    state = np.random.get_state()  # make_dataset reseeds numpy's global RNG; leave it as found
    try:
        data = make_dataset(get_dataset_args())
    finally:
        np.random.set_state(state)
    return data["x"][:, None, :], data["y"], data["x_test"][:, None, :], data["y_test"]


def synthetic(seed: int, n: int, shape: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    """Gaussian blobs around 4 class means: learnable in a few steps, for tests."""
    rng = np.random.default_rng(seed + 2)
    num_classes = 4
    means = rng.normal(0.0, 1.0, size=(num_classes, *shape))
    y = rng.integers(0, num_classes, size=n)
    x = means[y] + 0.5 * rng.normal(size=(n, *shape))
    n_test = n // 4
    return x[n_test:], y[n_test:], x[:n_test], y[:n_test]
