"""GraSP, SynFlow, iterative rounds and ablations against values computed by hand."""

import itertools

import numpy as np
import pytest
import torch
from torch import nn

from paiexport.data import DataSplits, Split
from paiexport.methods import SelectionContext, make_method
from paiexport.methods.grasp import GraspConfig
from paiexport.methods.magnitude import MagnitudeConfig
from paiexport.methods.score import RoundSchedule, ScoreMethod, round_densities
from paiexport.methods.snip import SnipConfig
from paiexport.methods.synflow import SynflowConfig
from paiexport.models import ModelName, build_model
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


# ---------------------------------------------------------------- hand computations (numpy, float64)


def grad_by_hand(w1, w2, x, y, temperature=1.0):
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


def hessian_grad_by_finite_differences(w1, w2, x, y, temperature, eps=1e-5):
    """Hg = (∇L(θ + εg) − ∇L(θ − εg)) / 2ε: an independent check of the double backward."""
    g1, g2 = grad_by_hand(w1, w2, x, y, temperature)
    plus = grad_by_hand(w1 + eps * g1, w2 + eps * g2, x, y, temperature)
    minus = grad_by_hand(w1 - eps * g1, w2 - eps * g2, x, y, temperature)
    return (plus[0] - minus[0]) / (2 * eps), (plus[1] - minus[1]) / (2 * eps)


def top_k_mask(scores: np.ndarray, k: int) -> np.ndarray:
    order = np.argsort(-scores.flatten(), kind="stable")
    mask = np.zeros(scores.size, dtype=bool)
    mask[order[:k]] = True
    return mask.reshape(scores.shape)


# ---------------------------------------------------------------- GraSP


@pytest.mark.parametrize("temperature", [1.0, 200.0])
def test_grasp_scores_are_theta_times_hessian_gradient(temperature):
    w1, w2, x, y = np.array(W1), np.array(W2), np.array(X), np.array(Y)
    hg1, hg2 = hessian_grad_by_finite_differences(w1, w2, x, y, temperature)
    net = two_layer_net(torch.float64)
    method = make_method(GraspConfig(temperature=temperature))
    scores = method.scores(context(net))
    # scores = θ ⊙ Hg (higher = keep), i.e. minus the paper's S(−θ) = −θ ⊙ Hg.
    np.testing.assert_allclose(scores["0.weight"].numpy(), w1 * hg1, rtol=1e-6, atol=1e-14)
    np.testing.assert_allclose(scores["2.weight"].numpy(), w2 * hg2, rtol=1e-6, atol=1e-14)
    assert np.abs(w1 * hg1).max() > 0  # the check is not vacuous


def test_grasp_removes_the_highest_paper_scores():
    w1, w2, x, y = np.array(W1), np.array(W2), np.array(X), np.array(Y)
    hg1, hg2 = hessian_grad_by_finite_differences(w1, w2, x, y, 200.0)
    paper1, paper2 = -w1 * hg1, -w2 * hg2  # S(−θ) = −θ ⊙ Hg
    masks = make_method(GraspConfig()).select(context(two_layer_net(torch.float64)))
    # Uniform 50%: remove the 3 (of 6) and 2 (of 4) highest S, keep the rest.
    np.testing.assert_array_equal(masks["0.weight"].numpy(), ~top_k_mask(paper1, 3))
    np.testing.assert_array_equal(masks["2.weight"].numpy(), ~top_k_mask(paper2, 2))


def test_grasp_leaves_the_model_untouched():
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    make_method(GraspConfig(batches=2)).select(context(net, torch.randn(8, 3), torch.randint(0, 2, (8,))))
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    assert all(p.grad is None for p in net.parameters())


# ---------------------------------------------------------------- SynFlow


def test_synflow_scores_match_closed_form():
    # R = 1ᵀ|W2||W1|1, so ∂R/∂W1[i,j] = Σ_k |W2[k,i]| and ∂R/∂W2[k,i] = Σ_j |W1[i,j]|.
    a1, a2 = np.abs(np.array(W1)), np.abs(np.array(W2))
    net = two_layer_net()
    scores = make_method(SynflowConfig(rounds=1)).scores(context(net))
    np.testing.assert_allclose(scores["0.weight"].numpy(), a1 * a2.sum(axis=0)[:, None], rtol=1e-12)
    np.testing.assert_allclose(scores["2.weight"].numpy(), a2 * a1.sum(axis=1)[None, :], rtol=1e-12)
    # Signs are never touched.
    assert net[0].weight.tolist() == W1 and net[2].weight.tolist() == W2


def test_synflow_uses_batchnorm_in_eval_mode_with_absolute_statistics():
    net = nn.Sequential(
        nn.Linear(3, 2, bias=False), nn.BatchNorm1d(2), nn.ReLU(), nn.Linear(2, 2, bias=False)
    )
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor(W1))
        net[3].weight.copy_(torch.tensor(W2))
        net[1].running_mean.fill_(-0.5)  # |.| = 0.5
        net[1].running_var.fill_(4.0)
        net[1].weight.fill_(-2.0)  # |.| = 2
        net[1].bias.fill_(0.3)
    net.train()
    a1, a2 = np.abs(np.array(W1)), np.abs(np.array(W2))
    scale = 2.0 / np.sqrt(4.0 + net[1].eps)
    h = (a1.sum(axis=1) - 0.5) * scale + 0.3  # eval-mode BN of |W1|·1, all positive
    expected1 = a1 * (a2.sum(axis=0) * scale)[:, None]
    expected2 = a2 * h[None, :]
    scores = make_method(SynflowConfig(rounds=1)).scores(context(net))
    np.testing.assert_allclose(scores["0.weight"].numpy(), expected1, rtol=1e-6)
    np.testing.assert_allclose(scores["3.weight"].numpy(), expected2, rtol=1e-6)
    assert net.training and float(net[1].running_mean[0]) == -0.5  # mode and stats restored


def test_synflow_is_data_free():
    net = two_layer_net()
    ctx = context(net)
    a = make_method(SynflowConfig(rounds=1)).scores(ctx)
    ctx_noise = context(net, x=torch.randn(3, 3) * 100, y=torch.tensor([1, 0, 0]))
    b = make_method(SynflowConfig(rounds=1)).scores(ctx_noise)
    assert all(torch.equal(a[n], b[n]) for n in a)


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
        m1, m2 = top_k_mask(s1, round(density * 20)), top_k_mask(s2, round(density * 12))
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


def test_synflow_at_99_9_percent_leaves_no_cnn1d_layer_empty():
    torch.manual_seed(0)
    model = build_model(ModelName.cnn1d, {}, (1, 40), 10)
    ctx = context(model, torch.zeros(2, 1, 40), torch.tensor([0, 1]), target=0.999, distribution="global")
    masks = make_method(SynflowConfig()).select(ctx)  # 100 rounds, exponential
    sizes = {n: m.numel() for n, m in masks.items()}
    assert sum(int(m.sum()) for m in masks.values()) == total_keep(sizes, 0.999)
    assert all(int(m.sum()) > 0 for m in masks.values()), {n: int(m.sum()) for n, m in masks.items()}


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
