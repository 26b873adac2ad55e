"""Removing dead attention heads: which heads are dead, the replacement holding the kept heads,
and outputs equal to nn.MultiheadAttention's under every mask and layout."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from paiexport.sparsity.depgraph import build_graph
from paiexport.sparsity.shrink_attention import (
    PrunedMultiheadAttention,
    dead_heads,
    head_groups,
    pruned_attention,
    shrink_heads,
)


def attention(heads: int = 2, **kwargs: object) -> nn.MultiheadAttention:
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(4 * heads // 2, heads, **kwargs).eval()
    if mha.in_proj_bias is not None:
        with torch.no_grad():
            mha.in_proj_bias.uniform_(-1, 1)
            mha.out_proj.bias.uniform_(-1, 1)
    return mha


def same_outputs(mha: nn.MultiheadAttention, small: nn.Module, x: torch.Tensor, **masks: object) -> None:
    with torch.no_grad():
        want, got = mha(x, x, x, need_weights=False, **masks)[0], small(x, x, x, **masks)[0]
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)


def test_dead_heads_have_zero_v_rows_or_zero_out_proj_columns() -> None:
    mha = attention(heads=4)  # embed 8, heads of 2
    assert dead_heads(mha).tolist() == [False] * 4
    with torch.no_grad():
        mha.in_proj_weight[16 + 2 : 16 + 4] = 0  # v rows of head 1
        mha.out_proj.weight[:, 6:8] = 0  # out_proj columns of head 3
        mha.in_proj_weight[0:2] = 0  # q rows of head 0 alone: it still adds its values
    assert dead_heads(mha).tolist() == [False, True, False, True]
    with torch.no_grad():
        mha.out_proj.weight.zero_()
    assert dead_heads(mha).tolist() == [False, True, True, True]  # one head is always kept


def test_pruned_attention_equals_multihead_attention_by_hand() -> None:
    """E=4, 2 heads; head 1's q/k/v rows zero: it outputs its v bias, folded into out_proj.bias."""
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(4, 2, batch_first=True).eval()
    with torch.no_grad():
        mha.in_proj_bias.copy_(torch.arange(12.0) / 10)
        mha.out_proj.bias.copy_(torch.tensor([1.0, -1.0, 0.5, 0.0]))
        for k in range(3):  # head 1 = rows 2:4 of each of q, k, v
            mha.in_proj_weight[4 * k + 2 : 4 * k + 4] = 0
    dead = dead_heads(mha)
    assert dead.tolist() == [False, True]
    small = pruned_attention(mha, dead).eval()
    assert (
        small.num_heads == 1 and small.q_proj.weight.shape == (2, 4) and small.out_proj.weight.shape == (4, 2)
    )
    # b_v of head 1 is in_proj_bias[10:12] = (1.0, 1.1)
    folded = mha.out_proj.bias + mha.out_proj.weight[:, 2:4] @ torch.tensor([1.0, 1.1])
    torch.testing.assert_close(small.out_proj.bias, folded)
    x = torch.randn(3, 5, 4)
    padding = torch.zeros(3, 5, dtype=torch.bool)
    padding[1, 3:] = True
    causal = nn.Transformer.generate_square_subsequent_mask(5)
    for masks in ({"key_padding_mask": padding}, {"attn_mask": causal, "is_causal": True}):
        same_outputs(mha, small, x, **masks)


def test_the_kept_heads_weights_are_copied_exactly() -> None:
    mha = attention(heads=4)
    with torch.no_grad():
        mha.out_proj.weight[:, [0, 1, 4, 5]] = 0  # heads 0 and 2, as the masks prune them
    small = pruned_attention(mha, dead_heads(mha))
    assert small.heads.tolist() == [1, 3] and small.source_heads == 4
    rows = [2, 3, 6, 7]
    for k, proj in enumerate((small.q_proj, small.k_proj, small.v_proj)):
        assert torch.equal(proj.weight, mha.in_proj_weight[[8 * k + r for r in rows]])
        assert torch.equal(proj.bias, mha.in_proj_bias[[8 * k + r for r in rows]])
    assert torch.equal(small.out_proj.weight, mha.out_proj.weight[:, rows])
    torch.testing.assert_close(small.out_proj.bias, mha.out_proj.bias)  # zero columns fold nothing


def test_sequence_first_and_unbatched_inputs() -> None:
    mha = attention(heads=4)  # batch_first=False: (length, batch, embed)
    with torch.no_grad():
        mha.in_proj_weight[16:18] = 0  # v rows of head 0
    small = pruned_attention(mha, dead_heads(mha)).eval()
    assert small.num_heads == 3
    same_outputs(mha, small, torch.randn(5, 3, 8))
    same_outputs(mha, small, torch.randn(5, 8))  # one unbatched sequence


def test_without_biases() -> None:
    mha = attention(heads=4, bias=False)
    with torch.no_grad():
        mha.in_proj_weight[16:20] = 0  # v rows of heads 0 and 1
    small = pruned_attention(mha, dead_heads(mha)).eval()
    assert small.q_proj.bias is None and small.num_heads == 2
    assert torch.equal(small.out_proj.bias, torch.zeros(8))
    same_outputs(mha, small, torch.randn(5, 2, 8))


def test_per_head_and_float_masks_select_the_kept_heads() -> None:
    mha = attention(heads=4, batch_first=True)
    with torch.no_grad():
        mha.out_proj.weight[:, 2:4] = 0  # head 1
    small = pruned_attention(mha, dead_heads(mha)).eval()
    g = torch.Generator().manual_seed(0)
    per_head = torch.rand(2 * 4, 5, 5, generator=g) > 0.6  # (batch x source heads, L, S)
    per_head[..., 0] = False  # every query sees a key
    same_outputs(mha, small, torch.randn(2, 5, 8), attn_mask=per_head)
    same_outputs(mha, small, torch.randn(2, 5, 8), attn_mask=torch.randn(5, 5, generator=g))


def test_is_causal_needs_a_mask_as_in_torch() -> None:
    small = pruned_attention(attention(), torch.tensor([False, True]))
    x = torch.randn(3, 2, 4)
    with pytest.raises(RuntimeError, match="Need attn_mask if specifying the is_causal hint"):
        small(x, x, x, is_causal=True)


class Attend(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn, self.fc = nn.MultiheadAttention(8, 4, batch_first=True), nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.attn(x, x, x)[0].mean(dim=1))


def test_shrink_heads_replaces_the_module_in_place() -> None:
    torch.manual_seed(0)
    model = Attend().eval()
    graph = build_graph(model, torch.zeros(2, 5, 8))
    [index] = graph.prunable
    assert head_groups(graph) == {index: "attn"}
    assert shrink_heads(model, graph) == {} and isinstance(model.attn, nn.MultiheadAttention)
    x = torch.randn(3, 5, 8)
    with torch.no_grad():
        model.attn.out_proj.weight[:, 0:6] = 0  # heads 0, 1, 2
        want = model(x)
    assert shrink_heads(model, graph) == {index: 3}
    assert isinstance(model.attn, PrunedMultiheadAttention) and model.attn.heads.tolist() == [3]
    with torch.no_grad():
        torch.testing.assert_close(model(x), want, atol=1e-6, rtol=0)


def test_the_replacement_trains_like_the_source() -> None:
    mha = attention(heads=4).train()
    with torch.no_grad():
        mha.out_proj.weight[:, 0:2] = 0
    small = pruned_attention(mha, dead_heads(mha))
    assert small.training and all(p.requires_grad for p in small.parameters())
    x = torch.randn(5, 2, 8)
    small(x, x, x)[0].sum().backward()
    assert small.q_proj.weight.grad.abs().sum() > 0
