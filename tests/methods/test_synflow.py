"""SynFlow: |θ ⊙ ∂R/∂θ| of the absolute-valued network on an all-ones input, against closed forms."""

import numpy as np
import pytest
import torch
from hf_tiny import BERT, HF_REASON, tiny, tokens
from selection_context import context, two_layer_net
from torch import nn

from paiexport.inputs import Inputs
from paiexport.methods import make_method
from paiexport.methods.synflow import SynflowConfig
from paiexport.models import ModelName, build_model
from paiexport.sparsity.allocation import total_keep

W1 = [[0.5, -1.0, 0.25], [1.0, 0.5, -0.5]]  # two_layer_net's weights
W2 = [[1.0, -2.0], [0.5, 0.75]]
X = torch.tensor([[1.0, 2.0, -1.0], [0.5, -0.5, 2.0], [-1.0, 1.0, 1.5]])
Y = torch.tensor([0, 1, 1])


def synflow_scores(net: nn.Module, x: Inputs = X, y: torch.Tensor = Y) -> dict[str, torch.Tensor]:
    return make_method(SynflowConfig(rounds=1)).scores(context(net, x, y))


def test_synflow_scores_match_closed_form():
    # R = 1ᵀ|W2||W1|1, so ∂R/∂W1[i,j] = Σ_k |W2[k,i]| and ∂R/∂W2[k,i] = Σ_j |W1[i,j]|.
    a1, a2 = np.abs(np.array(W1)), np.abs(np.array(W2))
    net = two_layer_net()
    scores = synflow_scores(net)
    np.testing.assert_allclose(scores["0.weight"].numpy(), a1 * a2.sum(axis=0)[:, None], rtol=1e-12)
    np.testing.assert_allclose(scores["2.weight"].numpy(), a2 * a1.sum(axis=1)[None, :], rtol=1e-12)
    # Signs are never touched.
    assert net[0].weight.tolist() == W1 and net[2].weight.tolist() == W2


def test_synflow_takes_absolute_biases_and_leaves_them_and_the_grads_alone():
    net = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 2))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor(W1))
        net[2].weight.copy_(torch.tensor(W2))
        net[0].bias.copy_(torch.tensor([-0.5, 1.0]))
        net[2].bias.copy_(torch.tensor([-3.0, 2.0]))
    a1, a2 = np.abs(np.array(W1)), np.abs(np.array(W2))
    h = a1.sum(axis=1) + np.array([0.5, 1.0])  # |W1|·1 + |b1| = [2.25, 3.0]; with b1 itself [1.25, 3.0]
    scores = synflow_scores(net)
    assert set(scores) == {"0.weight", "2.weight"}  # biases flow, but are not scored
    np.testing.assert_allclose(scores["0.weight"].numpy(), a1 * a2.sum(axis=0)[:, None], rtol=1e-12)
    np.testing.assert_allclose(scores["2.weight"].numpy(), a2 * h[None, :], rtol=1e-12)
    assert net[0].bias.tolist() == [-0.5, 1.0] and net[2].bias.tolist() == [-3.0, 2.0]
    assert all(p.grad is None for p in net.parameters())


def test_synflow_scores_a_tied_weight_once_with_the_flow_of_both_uses():
    w = np.array([[1.0, -2.0], [0.5, 3.0]])
    net = nn.Sequential(nn.Linear(2, 2, bias=False), nn.ReLU(), nn.Linear(2, 2, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.from_numpy(w))
    net[2].weight = net[0].weight
    # R = Σ_kij |W_ki||W_ij|: ∂R/∂|W_ab| = Σ_j |W_bj| (as the first factor) + Σ_k |W_ka| (as the second).
    a = np.abs(w)
    expected = a * (a.sum(axis=1)[None, :] + a.sum(axis=0)[:, None])  # [[4.5, 10], [4, 25.5]]
    scores = synflow_scores(net, torch.zeros(1, 2), torch.zeros(1).long())
    assert set(scores) == {"0.weight"}
    np.testing.assert_allclose(scores["0.weight"].numpy(), expected, rtol=1e-12)


def test_synflow_flow_stays_finite_where_float32_would_overflow():
    """Four 4x4 layers of |w| = 1e12: R = 4^5·w^4 ≈ 1e51, past float32's 3.4e38."""
    net = nn.Sequential(*[nn.Linear(4, 4, bias=False) for _ in range(4)])
    with torch.no_grad():
        for layer in net:
            layer.weight.fill_(-1e12)
    w = abs(float(net[0].weight[0, 0]))  # 1e12 as float32 stores it
    scores = synflow_scores(net, torch.zeros(1, 4), torch.zeros(1).long())
    for name, score in scores.items():  # each weight lies on 4^3 paths of 3 other weights
        assert score.dtype == torch.float64, name
        np.testing.assert_allclose(score.numpy(), np.full((4, 4), 64 * w**4), rtol=1e-12)


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
    scores = synflow_scores(net)
    np.testing.assert_allclose(scores["0.weight"].numpy(), expected1, rtol=1e-6)
    np.testing.assert_allclose(scores["3.weight"].numpy(), expected2, rtol=1e-6)
    assert net.training and float(net[1].running_mean[0]) == -0.5  # mode and stats restored


def test_synflow_is_data_free():
    net = two_layer_net()
    a = synflow_scores(net)
    b = synflow_scores(net, torch.randn(3, 3) * 100, torch.tensor([1, 0, 0]))
    assert all(torch.equal(a[n], b[n]) for n in a)


def test_synflow_at_99_9_percent_leaves_no_cnn1d_layer_empty():
    torch.manual_seed(0)
    model = build_model(ModelName.cnn1d, {}, (1, 40), 10)
    ctx = context(model, torch.zeros(2, 1, 40), torch.tensor([0, 1]), target=0.999, distribution="global")
    masks = make_method(SynflowConfig()).select(ctx)  # 100 rounds, exponential
    sizes = {n: m.numel() for n, m in masks.items()}
    assert sum(int(m.sum()) for m in masks.values()) == total_keep(sizes, 0.999)
    assert all(int(m.sum()) > 0 for m in masks.values()), {n: int(m.sum()) for n, m in masks.items()}


class TokenNet(nn.Module):
    """Embedding -> W1 -> ReLU -> W2 per token, the embeddings masked: (N, T, 2) outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(7, 3)
        self.net = two_layer_net()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.net(self.embed(input_ids) * attention_mask.unsqueeze(-1))


def test_synflow_on_token_ids_flows_from_all_ones_embeddings():
    # The embeddings give ones (the all-ones input one layer in) and the mask is ones: each of
    # the T = 4 tokens carries R = 1ᵀ|W2||W1|1, so the scores are T times the closed form's.
    torch.manual_seed(0)
    net = TokenNet()
    x = {"input_ids": torch.randint(0, 7, (3, 4)), "attention_mask": torch.zeros(3, 4, dtype=torch.int64)}
    scores = synflow_scores(net, x)
    a1, a2 = np.abs(np.array(W1)), np.abs(np.array(W2))
    assert set(scores) == {"net.0.weight", "net.2.weight"}  # the table is not prunable
    np.testing.assert_allclose(scores["net.0.weight"].numpy(), 4 * a1 * a2.sum(axis=0)[:, None], rtol=1e-12)
    np.testing.assert_allclose(scores["net.2.weight"].numpy(), 4 * a2 * a1.sum(axis=1)[None, :], rtol=1e-12)
    assert all(bool(torch.isfinite(s).all() and (s > 0).all()) for s in scores.values())
    assert not net.embed._forward_hooks and not net.embed._forward_pre_hooks  # the hooks are gone


class NormNet(nn.Module):
    """Embedding -> LayerNorm -> W1 -> Tanh -> W2 per token: a transformer's layers in small."""

    def __init__(self) -> None:
        super().__init__()
        self.embed, self.norm = nn.Embedding(7, 3), nn.LayerNorm(3)
        self.net = two_layer_net()
        self.net[1] = nn.Tanh()
        with torch.no_grad():
            self.norm.weight.copy_(torch.tensor([1.0, -2.0, 0.5]))
            self.norm.bias.copy_(torch.tensor([0.5, 0.25, -1.0]))

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.net(self.norm(self.embed(input_ids)))


def test_synflow_flows_through_layernorm_as_its_affine_part_and_through_tanh():
    # LayerNorm of the all-ones embeddings would be 0·|γ| + |β| and tanh(3.375) has slope 0.005;
    # linearized, LayerNorm gives a = |γ| + |β| and Tanh passes h = |W1|a: per token
    # R = 1ᵀ|W2||W1|a, so over T = 4 tokens ∂R/∂W1 = 4 (|W2|ᵀ1) aᵀ and ∂R/∂W2 = 4 · 1 hᵀ.
    torch.manual_seed(0)
    net = NormNet()
    scores = synflow_scores(net, torch.randint(0, 7, (3, 4)))
    a1, a2 = np.abs(np.array(W1)), np.abs(np.array(W2))
    a = np.array([1.5, 2.25, 1.5])
    h = a1 @ a
    np.testing.assert_allclose(
        scores["net.0.weight"].numpy(), 4 * a1 * np.outer(a2.sum(axis=0), a), rtol=1e-12
    )
    np.testing.assert_allclose(scores["net.2.weight"].numpy(), 4 * a2 * h[None, :], rtol=1e-12)
    assert not net.norm._forward_hooks and not net.net[1]._forward_hooks  # the hooks are gone
    assert net.norm.weight.tolist() == [1.0, -2.0, 0.5]


def test_synflow_scores_every_layer_of_a_hugging_face_encoder():
    """BERT with zero biases, as transformers initializes it: embeddings -> LayerNorm (zero on
    all-ones) ... pooler tanh. Every score was exactly 0 before; now the values, outputs, FFN,
    pooler and classifier all carry flow. (Queries and keys carry none: identical tokens attend
    uniformly whatever q·k is.)"""
    pytest.importorskip("transformers", reason=HF_REASON)
    model = tiny(BERT)
    for module in model.modules():
        if isinstance(module, nn.Linear):
            nn.init.zeros_(module.bias)
    scores = synflow_scores(model, tokens(2, 8), torch.tensor([0, 1]))
    layer = "bert.encoder.layer.1"
    for name in (
        f"{layer}.attention.self.value.weight",
        f"{layer}.attention.output.dense.weight",
        f"{layer}.intermediate.dense.weight",
        f"{layer}.output.dense.weight",
        "bert.pooler.dense.weight",
        "classifier.weight",
    ):
        assert bool(torch.isfinite(scores[name]).all() and (scores[name] > 0).all()), name
