"""scikit-learn's bundled diabetes data (442 patients, 10 features, a disease progression score):
real data that ships with scikit-learn, nothing downloaded. Features are standardized by
scikit-learn already; the last 88 patients are the test split."""

from __future__ import annotations

import torch
from sklearn.datasets import load_diabetes
from torch.utils.data import TensorDataset


def datasets() -> tuple[TensorDataset, TensorDataset]:
    x, y = load_diabetes(return_X_y=True)
    x = torch.as_tensor(x, dtype=torch.float32) * 20  # scikit-learn scales each column to unit norm
    y = torch.as_tensor(y, dtype=torch.float32)
    return TensorDataset(x[:354], y[:354]), TensorDataset(x[354:], y[354:])
