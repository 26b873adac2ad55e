"""A two-layer ReLU net with hand-set weights, the SelectionContext a method selects in, and the
net's gradient and top-k written out with numpy (independent of torch's autograd and topk)."""

import numpy as np
import torch
from torch import nn

from paiexport.data import DataSplits, Split
from paiexport.inputs import Inputs, tensors
from paiexport.methods import SelectionContext
from paiexport.sparsity.types import SparsityConfig


def two_layer_net() -> nn.Sequential:
    net = nn.Sequential(nn.Linear(3, 2, bias=False), nn.ReLU(), nn.Linear(2, 2, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[0.5, -1.0, 0.25], [1.0, 0.5, -0.5]]))
        net[2].weight.copy_(torch.tensor([[1.0, -2.0], [0.5, 0.75]]))
    return net


def context(
    net: nn.Module, x: Inputs, y: torch.Tensor, target: float = 0.5, distribution: str = "uniform"
) -> SelectionContext:
    split = Split(x, y)
    data = DataSplits(split, split, split, input_shape=tuple(tensors(x)[0].shape[1:]), num_classes=2)
    return SelectionContext(
        net, data, SparsityConfig(target=target, distribution=distribution), batch_size=len(y)
    )


def grad_by_hand(
    w1: np.ndarray, w2: np.ndarray, x: np.ndarray, y: np.ndarray, temperature: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """∂L/∂W of mean cross-entropy(W2 relu(W1 x) / T), written out."""
    g1, g2 = np.zeros_like(w1), np.zeros_like(w2)
    for xi, yi in zip(x, y, strict=True):
        pre = w1 @ xi
        h = np.maximum(pre, 0)
        z = (w2 @ h) / temperature
        p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        dz = (p - np.eye(len(z))[yi]) / temperature
        g2 += np.outer(dz, h) / len(y)
        g1 += np.outer((w2.T @ dz) * (pre > 0), xi) / len(y)
    return g1, g2


def top_k_by_hand(scores: np.ndarray, k: int) -> np.ndarray:
    """Bool mask of the k highest scores (ties: the lower flat index)."""
    order = np.argsort(-scores.flatten(), kind="stable")
    mask = np.zeros(scores.size, dtype=bool)
    mask[order[:k]] = True
    return mask.reshape(scores.shape)
