"""Remove dead attention heads of `nn.MultiheadAttention`, keeping the function exact.

A head is dead when its v rows are all zero or its out_proj columns are all zero (the masks
zero the latter, `attention.py`; zero q/k/v rows, the head's producer rows, imply the former).
Exactness, in eval mode: with its v rows zero the head's values are the constant b_v[h] (its
v bias, or 0) at every key position. Attention weights are a softmax over keys, and each row
sums to 1 whatever the scores, under any attn_mask, key_padding_mask or causal mask (a query
row with every key masked is NaN in torch as well), so the head outputs exactly b_v[h] at
every position. Its contribution out_proj.weight[:, head cols] @ b_v[h] is folded into
out_proj.bias (a zero bias is added if there is none); with zero out_proj columns it is 0.
In training mode attention dropout rescales the weights, so a removed head differs slightly
(that is fine for `train.compact`, which trains the small model from the start).

The module is replaced by `PrunedMultiheadAttention` holding only the kept heads. Every head
group keeps at least one head. Its forward has nn.MultiheadAttention's signature and returns
(output, None); its `in_proj_bias = None` and `_qkv_same_embed_dim = False` make
nn.TransformerEncoderLayer / nn.TransformerEncoder take their plain (non-fused) path.
"""

from __future__ import annotations

import torch
from torch import nn

from paiexport.sparsity.depgraph import DependencyGraph

NEG_INF = float("-inf")


class PrunedMultiheadAttention(nn.Module):
    """Multi-head attention over the kept heads of an nn.MultiheadAttention (plain ops only)."""

    # Read by TransformerEncoderLayer's fast-path checks: these send it to the normal path.
    _qkv_same_embed_dim = False
    in_proj_weight = None
    in_proj_bias = None

    def __init__(self, source: nn.MultiheadAttention, heads: torch.Tensor, bias: bool) -> None:
        super().__init__()
        self.embed_dim, self.head_dim = source.embed_dim, source.head_dim
        self.num_heads = len(heads)
        self.batch_first, self.dropout = source.batch_first, source.dropout
        self.scale = float(source.head_dim) ** -0.5  # of the original head size
        self.register_buffer("heads", heads.clone())  # kept heads, to select per-head masks
        self.source_heads = source.num_heads
        inner = self.num_heads * self.head_dim
        self.q_proj, self.k_proj, self.v_proj = (nn.Linear(self.embed_dim, inner, bias=bias) for _ in "qkv")
        self.out_proj = nn.Linear(inner, self.embed_dim)

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
        need_weights: bool = True,
        attn_mask: torch.Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[torch.Tensor, None]:
        if is_causal and attn_mask is None:
            raise RuntimeError("Need attn_mask if specifying the is_causal hint.")  # as torch
        unbatched = query.dim() == 2
        if unbatched:
            query, key, value = query.unsqueeze(0), key.unsqueeze(0), value.unsqueeze(0)
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)
        elif not self.batch_first:
            query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
        q = self._split(self.q_proj(query)) * self.scale
        k, v = self._split(self.k_proj(key)), self._split(self.v_proj(value))
        scores = self._masked(q @ k.transpose(-2, -1), attn_mask, key_padding_mask)
        weights = nn.functional.dropout(torch.softmax(scores, dim=-1), self.dropout, self.training)
        out = (weights @ v).transpose(1, 2)
        out = self.out_proj(out.reshape(out.shape[0], out.shape[1], -1))
        if unbatched:
            return out.squeeze(0), None
        return (out if self.batch_first else out.transpose(0, 1)), None

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, length, heads * head_dim) -> (batch, heads, length, head_dim)."""
        return x.reshape(x.shape[0], x.shape[1], self.num_heads, self.head_dim).transpose(1, 2)

    def _masked(
        self, scores: torch.Tensor, attn_mask: torch.Tensor | None, padding: torch.Tensor | None
    ) -> torch.Tensor:
        """Apply masks like torch: bool True = not allowed, float = added to the scores."""
        if attn_mask is not None:
            if attn_mask.dim() == 3:  # (batch * source heads, L, S): keep our heads' slices
                mask = attn_mask.reshape(-1, self.source_heads, *attn_mask.shape[1:])
                attn_mask = mask.index_select(1, self.heads)
            scores = _apply(scores, attn_mask)
        if padding is not None:
            scores = _apply(scores, padding[:, None, None, :])
        return scores


def _apply(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    if mask.dtype == torch.bool:
        return scores.masked_fill(mask, NEG_INF)
    return scores + mask.to(scores.dtype)


def dead_heads(mha: nn.MultiheadAttention) -> torch.Tensor:
    """Heads whose v rows or out_proj columns are all zero; one head is always kept."""
    e, h = mha.embed_dim, mha.num_heads
    with torch.no_grad():
        v_rows = mha.in_proj_weight[2 * e :].reshape(h, -1)
        out_cols = mha.out_proj.weight.T.reshape(h, -1)
        dead = (~v_rows.any(dim=1)) | (~out_cols.any(dim=1))
    if dead.all():
        dead[0] = False
    return dead.cpu()


def pruned_attention(mha: nn.MultiheadAttention, dead: torch.Tensor) -> PrunedMultiheadAttention:
    """The exact replacement of `mha` without the `dead` heads (see the module docstring)."""
    e, d = mha.embed_dim, mha.head_dim
    device = mha.out_proj.weight.device
    heads = torch.nonzero(~dead).flatten().to(device)
    cols = (heads.view(-1, 1) * d + torch.arange(d, device=device)).flatten()
    gone = (
        torch.nonzero(dead).flatten().to(device).view(-1, 1) * d + torch.arange(d, device=device)
    ).flatten()
    bias = mha.in_proj_bias
    small = PrunedMultiheadAttention(mha, heads, bias is not None).to(device, mha.out_proj.weight.dtype)
    with torch.no_grad():
        for k, proj in enumerate((small.q_proj, small.k_proj, small.v_proj)):
            proj.weight.copy_(mha.in_proj_weight[k * e + cols])
            if bias is not None:
                proj.bias.copy_(bias[k * e + cols])
        w_out = mha.out_proj.weight
        small.out_proj.weight.copy_(w_out[:, cols])
        out_bias = mha.out_proj.bias if mha.out_proj.bias is not None else torch.zeros_like(w_out[:, 0])
        folded = w_out[:, gone] @ bias[2 * e + gone] if bias is not None else torch.zeros_like(out_bias)
        small.out_proj.bias.copy_(out_bias + folded)
    return small.requires_grad_(w_out.requires_grad).train(mha.training)


def head_groups(graph: DependencyGraph) -> dict[int, str]:
    """Prunable head groups: group index -> name of its nn.MultiheadAttention."""
    found = {}
    for i in graph.prunable:
        qkv = [m for m in graph.groups[i].members if m.role == "qkv"]
        if qkv:
            found[i] = qkv[0].module
    return found


def shrink_heads(root: nn.Module, graph: DependencyGraph) -> dict[int, int]:
    """Replace every attention module with dead heads in place; group index -> heads removed."""
    modules = dict(root.named_modules())
    removed: dict[int, int] = {}
    for index, name in head_groups(graph).items():
        mha = modules[name]
        dead = dead_heads(mha)
        if not dead.any():
            continue
        parent_name, _, attr = name.rpartition(".")
        setattr(modules[parent_name] if parent_name else root, attr, pruned_attention(mha, dead))
        removed[index] = int(dead.sum())
    return removed
