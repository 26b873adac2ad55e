"""GraSP: θ ⊙ Hg against a finite-difference Hessian-gradient product of a hand-written gradient."""

import dataclasses

import numpy as np
import pytest
import torch
from hf_tiny import BERT, HF_REASON, tiny, tokens
from selection_context import context, grad_by_hand, top_k_by_hand, two_layer_net
from torch import nn

from paiexport.methods import make_method
from paiexport.methods.grasp import GraspConfig

W1 = np.array([[0.5, -1.0, 0.25], [1.0, 0.5, -0.5]])  # two_layer_net's weights
W2 = np.array([[1.0, -2.0], [0.5, 0.75]])
X = np.array([[1.0, 2.0, -1.0], [0.5, -0.5, 2.0], [-1.0, 1.0, 1.5]])
Y = np.array([0, 1, 1])


def hessian_grad_by_finite_differences(batches, temperature, eps=1e-5):
    """g = Σ_b ∇L_b; Hg = Σ_b (∇L_b(θ + εg) − ∇L_b(θ − εg)) / 2ε: independent of the double backward."""
    grads = [grad_by_hand(W1, W2, x, y, temperature) for x, y in batches]
    g1, g2 = sum(g[0] for g in grads), sum(g[1] for g in grads)
    hg1, hg2 = np.zeros_like(W1), np.zeros_like(W2)
    for x, y in batches:
        plus = grad_by_hand(W1 + eps * g1, W2 + eps * g2, x, y, temperature)
        minus = grad_by_hand(W1 - eps * g1, W2 - eps * g2, x, y, temperature)
        hg1 += (plus[0] - minus[0]) / (2 * eps)
        hg2 += (plus[1] - minus[1]) / (2 * eps)
    return hg1, hg2


def grasp_context(x: np.ndarray = X, y: np.ndarray = Y):
    return context(two_layer_net().double(), torch.from_numpy(x), torch.from_numpy(y))


@pytest.mark.parametrize("temperature", [1.0, 200.0])
def test_grasp_scores_are_theta_times_hessian_gradient(temperature):
    hg1, hg2 = hessian_grad_by_finite_differences([(X, Y)], temperature)
    scores = make_method(GraspConfig(temperature=temperature)).scores(grasp_context())
    # scores = θ ⊙ Hg (higher = keep), i.e. minus the paper's S(−θ) = −θ ⊙ Hg.
    np.testing.assert_allclose(scores["0.weight"].numpy(), W1 * hg1, rtol=1e-6, atol=1e-14)
    np.testing.assert_allclose(scores["2.weight"].numpy(), W2 * hg2, rtol=1e-6, atol=1e-14)
    assert np.abs(W1 * hg1).max() > 0  # the check is not vacuous


def test_grasp_sums_g_and_hg_over_its_batches():
    """Two batches of 3: g is the sum of both batch gradients and Hg the sum of both products
    (one batch, or the mean of the gradients, gives other numbers)."""
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(6, 3)), np.array([0, 1, 1, 0, 1, 0])
    ctx = dataclasses.replace(grasp_context(x, y), batch_size=3)
    twin = dataclasses.replace(grasp_context(x, y), batch_size=3)  # a fresh generator, same seed
    batches = [(bx.numpy(), by.numpy()) for bx, by in twin.train_batches(2)]  # the method's shuffle
    assert sorted(np.concatenate([bx for bx, _ in batches]).tolist()) == sorted(x.tolist())
    hg1, hg2 = hessian_grad_by_finite_differences(batches, 1.0)
    one1, _ = hessian_grad_by_finite_differences(batches[:1], 1.0)
    assert not np.allclose(W1 * hg1, W1 * one1, rtol=1e-3)  # the second batch matters here
    scores = make_method(GraspConfig(batches=2, temperature=1.0)).scores(ctx)
    np.testing.assert_allclose(scores["0.weight"].numpy(), W1 * hg1, rtol=1e-6, atol=1e-14)
    np.testing.assert_allclose(scores["2.weight"].numpy(), W2 * hg2, rtol=1e-6, atol=1e-14)


def test_grasp_removes_the_highest_paper_scores():
    hg1, hg2 = hessian_grad_by_finite_differences([(X, Y)], 200.0)
    paper1, paper2 = -W1 * hg1, -W2 * hg2  # S(−θ) = −θ ⊙ Hg
    masks = make_method(GraspConfig()).select(grasp_context())  # default temperature: 200
    # Uniform 50%: remove the 3 (of 6) and 2 (of 4) highest S, keep the rest.
    np.testing.assert_array_equal(masks["0.weight"].numpy(), ~top_k_by_hand(paper1, 3))
    np.testing.assert_array_equal(masks["2.weight"].numpy(), ~top_k_by_hand(paper2, 2))


def bn_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))


def test_grasp_leaves_the_model_untouched():
    net = bn_net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    make_method(GraspConfig(batches=2)).select(context(net, torch.randn(8, 3), torch.randint(0, 2, (8,))))
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    assert all(p.grad is None for p in net.parameters())


def test_grasp_scores_in_train_mode_and_restores_eval_mode():
    """BatchNorm normalizes with the batch's statistics while scoring, whatever mode the model is in."""
    x, y = torch.randn(8, 3, generator=torch.Generator().manual_seed(2)), torch.tensor([0, 1] * 4)
    net = bn_net()
    from_train = make_method(GraspConfig()).scores(context(net, x, y))
    net.eval()
    from_eval = make_method(GraspConfig()).scores(context(net, x, y))
    assert not net.training
    assert all(torch.equal(from_train[n], from_eval[n]) for n in from_train)


def test_grasp_scores_a_hugging_face_encoder_as_its_eager_attention_would():
    """A BERT on scaled_dot_product_attention: the fused kernel has no double backward
    (RuntimeError before), so GraSP scores on the math kernel: the same Hg as eager attention."""
    pytest.importorskip("transformers", reason=HF_REASON)
    x, y = tokens(4, 10), torch.tensor([0, 1, 2, 1])
    no_dropout = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
    fused = tiny(BERT, **no_dropout).double()
    eager = tiny(BERT, attn_implementation="eager", **no_dropout).double()
    assert fused.config._attn_implementation == "sdpa"
    method = make_method(GraspConfig(temperature=1.0))
    got = method.scores(context(fused, x, y))
    want = method.scores(context(eager, x, y))
    query = "bert.encoder.layer.0.attention.self.query.weight"
    assert got.keys() == want.keys() and want[query].abs().max() > 0
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-6, atol=1e-12)
