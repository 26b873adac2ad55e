"""Generated multi-label data: scikit-learn's `make_multilabel_classification` (fixed seed).

Each of 3,000 samples is a 100-word "document" (bag-of-words counts over 60 words) carrying
some of 12 labels (2 on average, at least one): each label has its own word distribution and
the document's words are drawn from the mixture of its labels'. Nothing is downloaded.
Counts are log1p-scaled and standardized with the training split's statistics; the last 600
samples are the test split.
"""

from __future__ import annotations

import torch
from sklearn.datasets import make_multilabel_classification
from torch.utils.data import TensorDataset

SAMPLES, TEST = 3000, 600


def datasets() -> tuple[TensorDataset, TensorDataset]:
    x, y = make_multilabel_classification(
        n_samples=SAMPLES,
        n_features=60,
        n_classes=12,
        n_labels=2,
        length=100,
        allow_unlabeled=False,
        random_state=0,
    )
    x = torch.log1p(torch.as_tensor(x, dtype=torch.float32))
    y = torch.as_tensor(y, dtype=torch.float32)
    train = slice(0, SAMPLES - TEST)
    mean, std = x[train].mean(0), x[train].std(0).clamp_min(1e-6)
    x = (x - mean) / std
    return TensorDataset(x[train], y[train]), TensorDataset(x[SAMPLES - TEST :], y[SAMPLES - TEST :])
