import importlib

import numpy as np
import pytest
import torch
from torch import nn

from paiexport.data import DataSplits, Split
from paiexport.methods import METHODS, SelectionContext, make_method
from paiexport.methods.magnitude import MagnitudeConfig
from paiexport.methods.random_pruning import RandomConfig
from paiexport.methods.snip import SnipConfig
from paiexport.sparsity.types import SparsityConfig


def two_layer_net() -> nn.Sequential:
    net = nn.Sequential(nn.Linear(3, 2, bias=False), nn.ReLU(), nn.Linear(2, 2, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[0.5, -1.0, 0.25], [1.0, 0.5, -0.5]]))
        net[2].weight.copy_(torch.tensor([[1.0, -2.0], [0.5, 0.75]]))
    return net


def context(net: nn.Module, x: torch.Tensor, y: torch.Tensor, target: float = 0.5) -> SelectionContext:
    split = Split(x, y)
    data = DataSplits(split, split, split, input_shape=(x.shape[1],), num_classes=2)
    return SelectionContext(
        net, data, SparsityConfig(target=target, distribution="uniform"), batch_size=len(y)
    )


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


def test_magnitude_scores_are_absolute_weights():
    net = two_layer_net()
    scores = make_method(MagnitudeConfig()).scores(context(net, torch.zeros(1, 3), torch.zeros(1).long()))
    assert scores["0.weight"].tolist() == [[0.5, 1.0, 0.25], [1.0, 0.5, 0.5]]
    masks = make_method(MagnitudeConfig()).select(context(net, torch.zeros(1, 3), torch.zeros(1).long()))
    # Uniform 50%: layer 0 keeps 1.0, 1.0 and the first of three 0.5s (ties go by position).
    assert masks["0.weight"].tolist() == [[True, True, False], [True, False, False]]
    assert masks["2.weight"].tolist() == [[True, True], [False, False]]


def test_random_is_seeded_and_exact():
    net = nn.Sequential(nn.Linear(20, 10), nn.Linear(10, 5))
    ctx = lambda: context(net, torch.zeros(1, 20), torch.zeros(1).long(), target=0.9)  # noqa: E731
    a, b = make_method(RandomConfig()).select(ctx()), make_method(RandomConfig()).select(ctx())
    for name in a:
        assert torch.equal(a[name], b[name])
    assert int(a["0.weight"].sum()) == 20 and int(a["1.weight"].sum()) == 5


@pytest.mark.parametrize("name", sorted(set(METHODS) - {"dense"}))
def test_every_method_cites_its_paper(name):
    module = importlib.import_module(METHODS[name].__module__)
    assert "Reference:" in (module.__doc__ or "") + (METHODS[name].__doc__ or "")


def test_random_masks_are_independent_of_the_initial_weights():
    """The selection stream must not replay the initialization's uniforms (seeding.stream)."""
    from pathlib import Path

    from paiexport.cli.overrides import parse_overrides
    from paiexport.recipe import bundled_recipes_dir, load_recipe
    from paiexport.runs.stages import prepare

    path = Path(bundled_recipes_dir() / "random90.yaml")
    recipe = load_recipe(path, parse_overrides(["sparsity.target=0.5", "data.name=synthetic"]))
    _, _, method, ctx = prepare(recipe)
    masks = method.select(ctx)
    for name in ("conv2.weight", "fc1.weight"):
        w, keep = ctx.prunable()[name].detach(), masks[name]
        kept = w[keep]
        assert 0.47 < float((kept > 0).float().mean()) < 0.53, name
        assert float(kept.abs().mean()) == pytest.approx(float(w.abs().mean()), rel=0.05), name


def test_streams_differ_by_purpose_and_seed():
    from paiexport.seeding import stream_seed

    seeds = {stream_seed(s, p) for s in (0, 1) for p in ("selection", "batches")}
    assert len(seeds) == 4 and all(0 <= s < 2**63 for s in seeds)
