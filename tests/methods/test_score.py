"""What every static criterion shares (`methods/score`): iterative rounds and ablations, against
values computed by hand. Each criterion's own scores are tested in its test_<method>.py."""

import itertools

import numpy as np
import pytest
import torch
from selection_context import grad_by_hand, top_k_by_hand
from torch import nn

from paiexport.data import DataSplits, Split
from paiexport.methods import SelectionContext, make_method
from paiexport.methods.magnitude import MagnitudeConfig
from paiexport.methods.score import RoundSchedule, ScoreMethod, round_densities
from paiexport.methods.snip import SnipConfig
from paiexport.methods.synflow import SynflowConfig
from paiexport.sparsity.allocation import layer_keep_counts, total_keep
from paiexport.sparsity.masks import get_masks, prunable_weights
from paiexport.sparsity.types import SparsityConfig
from paiexport.training.loop import TrainResult

W1 = [[0.5, -1.0, 0.25], [1.0, 0.5, -0.5]]
W2 = [[1.0, -2.0], [0.5, 0.75]]
X = [[1.0, 2.0, -1.0], [0.5, -0.5, 2.0], [-1.0, 1.0, 1.5]]
Y = [0, 1, 1]


def two_layer_net(dtype: torch.dtype = torch.float32) -> nn.Sequential:
    net = nn.Sequential(nn.Linear(3, 2, bias=False), nn.ReLU(), nn.Linear(2, 2, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor(W1))
        net[2].weight.copy_(torch.tensor(W2))
    return net.to(dtype)


def context(
    net: nn.Module,
    x: torch.Tensor | None = None,
    y: torch.Tensor | None = None,
    target: float = 0.5,
    distribution: str = "uniform",
    input_shape: tuple[int, ...] | None = None,
) -> SelectionContext:
    x = torch.tensor(X, dtype=next(net.parameters()).dtype) if x is None else x
    y = torch.tensor(Y) if y is None else y
    split = Split(x, y)
    shape = input_shape or tuple(x.shape[1:])
    data = DataSplits(split, split, split, input_shape=shape, num_classes=int(y.max()) + 1)
    return SelectionContext(
        net, data, SparsityConfig(target=target, distribution=distribution), batch_size=len(y)
    )


def test_round_densities_closed_form():
    assert round_densities(0.1, 4, RoundSchedule.exponential) == pytest.approx(
        [0.1**0.25, 0.1**0.5, 0.1**0.75, 0.1]
    )
    assert round_densities(0.1, 3, RoundSchedule.linear) == pytest.approx([0.7, 0.4, 0.1])
    assert round_densities(0.2, 1, RoundSchedule.exponential) == [0.2]


def mlp(sizes=(20, 16, 8, 4)) -> nn.Sequential:
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(sizes):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


@pytest.mark.parametrize("schedule", ["exponential", "linear"])
def test_synflow_rounds_reach_exact_densities_global(schedule):
    net = mlp()
    n, target = 7, 0.95
    method = make_method(SynflowConfig(rounds=n, schedule=schedule))
    ctx = context(net, torch.zeros(1, 20), torch.zeros(1).long(), target=target, distribution="global")
    history = method.select_rounds(ctx)
    sizes = {name: w.numel() for name, w in ctx.prunable().items()}
    total = sum(sizes.values())
    assert len(history) == n
    for k, masks in enumerate(history, start=1):
        d = 0.05 ** (k / n) if schedule == "exponential" else 1 - 0.95 * k / n
        assert sum(int(m.sum()) for m in masks.values()) == round(d * total), k
        if k > 1:  # masks only shrink: a weight pruned once stays pruned
            assert all(not torch.any(masks[name] & ~history[k - 2][name]) for name in masks)
    assert sum(int(m.sum()) for m in history[-1].values()) == total_keep(sizes, target)


def test_rounds_reach_exact_densities_per_layer():
    net = mlp()
    ctx = context(net, torch.zeros(1, 20), torch.zeros(1).long(), target=0.9, distribution="erk")
    shapes = {name: tuple(w.shape) for name, w in ctx.prunable().items()}
    history = make_method(SynflowConfig(rounds=5)).select_rounds(ctx)
    for k, masks in enumerate(history, start=1):
        sparsity = 1 - 0.1 ** (k / 5) if k < 5 else 0.9
        expected = layer_keep_counts(shapes, sparsity, ctx.sparsity.distribution)
        assert {name: int(m.sum()) for name, m in masks.items()} == expected


class Recorder(ScoreMethod):
    """Magnitude scores; remembers what the model looked like at every scoring call."""

    config_class = MagnitudeConfig

    def __init__(self, config):
        super().__init__(config)
        self.seen: list[dict] = []

    def scores(self, ctx):
        self.seen.append({"masks": get_masks(ctx.model), "model": ctx.model})
        return {n: w.detach().abs().clone() for n, w in ctx.prunable().items()}


def test_rounds_rescore_with_the_current_masks_attached():
    net = mlp()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    method = Recorder(MagnitudeConfig(rounds=3))
    ctx = context(net, torch.zeros(1, 20), torch.zeros(1).long(), target=0.8, distribution="global")
    history = method.select_rounds(ctx)
    assert method.seen[0]["masks"] == {}
    for k in (1, 2):
        attached = method.seen[k]["masks"]
        assert all(torch.equal(attached[n], history[k - 1][n]) for n in history[k - 1])
        for n, w in prunable_weights(method.seen[k]["model"]).items():
            assert torch.all(w[~history[k - 1][n]] == 0)
    # The caller's model is never touched.
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    assert get_masks(net) == {}


def test_iterative_snip_matches_hand_computation():
    """3 rounds, uniform 60%: each round rescores |θ ⊙ ∂L/∂θ| of the masked net by hand."""
    rng = np.random.default_rng(0)
    w1, w2 = rng.normal(size=(4, 5)), rng.normal(size=(3, 4))
    x, y = rng.normal(size=(6, 5)), rng.integers(0, 3, 6)
    m1, m2 = np.ones_like(w1, dtype=bool), np.ones_like(w2, dtype=bool)
    for k in (1, 2, 3):
        g1, g2 = grad_by_hand(w1 * m1, w2 * m2, x, y)
        s1, s2 = np.abs(w1 * m1 * g1), np.abs(w2 * m2 * g2)
        s1[~m1], s2[~m2] = -np.inf, -np.inf
        density = 0.4 ** (k / 3)
        m1, m2 = top_k_by_hand(s1, round(density * 20)), top_k_by_hand(s2, round(density * 12))
    net = nn.Sequential(nn.Linear(5, 4, bias=False), nn.ReLU(), nn.Linear(4, 3, bias=False)).double()
    with torch.no_grad():
        net[0].weight.copy_(torch.from_numpy(w1))
        net[2].weight.copy_(torch.from_numpy(w2))
    ctx = lambda: context(net, torch.from_numpy(x), torch.from_numpy(y), target=0.6)  # noqa: E731
    masks = make_method(SnipConfig(rounds=3)).select(ctx())
    np.testing.assert_array_equal(masks["0.weight"].numpy(), m1)
    np.testing.assert_array_equal(masks["2.weight"].numpy(), m2)
    single = make_method(SnipConfig()).select(ctx())
    assert not torch.equal(single["0.weight"], masks["0.weight"])  # iterating changes the answer


# ---------------------------------------------------------------- ablations


def fake_trainer(calls: list):
    def trainer(model, callbacks, *, epochs=None, tag="", checkpoint=None):
        calls.append({n: w.detach().clone() for n, w in prunable_weights(model).items()})
        return TrainResult()

    return trainer


def test_invert_keeps_the_lowest_scores():
    masks = make_method(MagnitudeConfig(ablation="invert")).select(context(two_layer_net()))
    # |W1| = [[.5, 1, .25], [1, .5, .5]]: the lowest three are .25 and the first two .5s.
    assert masks["0.weight"].tolist() == [[True, False, True], [False, True, False]]
    assert masks["2.weight"].tolist() == [[False, False], [True, True]]


def test_random_ticket_keeps_layer_counts_and_reshuffles_positions():
    net = mlp()
    ctx = lambda: context(net, torch.zeros(1, 20), torch.zeros(1).long(), 0.8, "global")  # noqa: E731
    plain = make_method(SnipConfig()).select(ctx())
    ticket = make_method(SnipConfig(ablation="random_ticket")).select(ctx())
    again = make_method(SnipConfig(ablation="random_ticket")).select(ctx())
    for name in plain:
        assert int(ticket[name].sum()) == int(plain[name].sum())
        assert torch.equal(ticket[name], again[name])  # seeded
    assert any(not torch.equal(ticket[n], plain[n]) for n in plain)


def test_reinit_keeps_the_mask_and_draws_fresh_weights():
    net = mlp()
    init = {n: w.detach().clone() for n, w in prunable_weights(net).items()}
    ctx = context(net, torch.zeros(1, 20), torch.zeros(1).long(), 0.8, "erk")
    expected = make_method(MagnitudeConfig()).select(ctx)
    calls: list = []
    make_method(MagnitudeConfig(ablation="reinit")).fit(ctx, fake_trainer(calls))
    masks = get_masks(net)
    for name, w in calls[0].items():
        assert torch.equal(masks[name], expected[name])
        assert torch.all(w[~masks[name]] == 0)
        assert not torch.any(w[masks[name]] == init[name][masks[name]])  # every survivor redrawn


def test_bad_ablation_and_rounds_name_the_field(write_recipe, tiny_recipe_dict):
    from paiexport.errors import UserError
    from paiexport.recipe import load_recipe

    tiny_recipe_dict["method"] = {"name": "synflow", "ablation": "shuffle"}
    with pytest.raises(UserError, match=r"method\.ablation"):
        load_recipe(write_recipe(tiny_recipe_dict))
    tiny_recipe_dict["method"] = {"name": "magnitude", "rounds": 0}
    with pytest.raises(UserError, match=r"method\.rounds"):
        load_recipe(write_recipe(tiny_recipe_dict))
