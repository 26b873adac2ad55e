"""SNIP: connection sensitivity |θ ⊙ ∂L/∂θ| against a numpy hand computation; the model untouched."""

import numpy as np
import torch
from selection_context import context, two_layer_net
from torch import nn

from paiexport.methods import make_method
from paiexport.methods.snip import SnipConfig


def snip_by_hand(
    w1: np.ndarray, w2: np.ndarray, x: np.ndarray, y: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """|θ ⊙ ∂L/∂θ| for mean cross-entropy of relu MLP, written out with numpy."""
    g1, g2 = np.zeros_like(w1), np.zeros_like(w2)
    for xi, yi in zip(x, y, strict=True):
        pre = w1 @ xi
        h = np.maximum(pre, 0)
        z = w2 @ h
        p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        dz = p - np.eye(2)[yi]
        g2 += np.outer(dz, h) / len(y)
        g1 += np.outer((w2.T @ dz) * (pre > 0), xi) / len(y)
    return np.abs(w1 * g1), np.abs(w2 * g2)


def test_snip_scores_match_hand_computation():
    x = torch.tensor([[1.0, 2.0, -1.0], [0.5, -0.5, 2.0]])
    y = torch.tensor([0, 1])
    net = two_layer_net()
    expected1, expected2 = snip_by_hand(
        net[0].weight.detach().numpy().astype(np.float64),
        net[2].weight.detach().numpy().astype(np.float64),
        x.numpy().astype(np.float64),
        y.numpy(),
    )
    scores = make_method(SnipConfig()).scores(context(net, x, y))
    np.testing.assert_allclose(scores["0.weight"].numpy(), expected1, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(scores["2.weight"].numpy(), expected2, rtol=1e-5, atol=1e-7)


def test_snip_leaves_the_model_untouched():
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x, y = torch.randn(8, 3), torch.randint(0, 2, (8,))
    make_method(SnipConfig()).select(context(net, x, y))
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert all(p.grad is None for p in net.parameters())
