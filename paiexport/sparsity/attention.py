"""Channel groups inside attention modules (fx keeps torch.nn modules whole).

`nn.MultiheadAttention`: its embed dim is both input and output width and is read by the
surrounding LayerNorms, so the spaces around it stay dense; its heads form a group (rows of
q, k and v and the head's out_proj columns) that is listed but kept dense, because
nn.MultiheadAttention cannot hold fewer heads than embed_dim / head_dim.
`nn.TransformerEncoderLayer` / `nn.TransformerEncoder`: the same for attention, and the MLP
hidden units (linear1 rows with linear2 columns) are a prunable group: a removed unit carries
the constant activation(bias), which `shrink.py` folds into linear2's bias.
"""

from __future__ import annotations

from torch import nn

from paiexport.sparsity.depgraph import FIXED, Builder, Member, State

_MLP_ACTIVATIONS = (nn.functional.relu, nn.functional.gelu)


def _heads(b: Builder, name: str, m: nn.MultiheadAttention) -> None:
    dim = m.head_dim
    if m._qkv_same_embed_dim:
        rows = [Member(name, "in_proj_weight", 0, "qkv", k * m.embed_dim, dim) for k in range(3)]
    else:
        rows = [Member(name, f"{p}_proj_weight", 0, "qkv", 0, dim) for p in "qkv"]
    space = b.new_space(m.num_heads, *rows, Member(f"{name}.out_proj", "weight", 1, "in", 0, dim))
    b.block([space], f"attention heads of {name} kept dense (nn.MultiheadAttention has a fixed head count)")


def attention_rule(b: Builder, name: str, m: nn.MultiheadAttention, inputs: list[int]) -> tuple:
    b.block(inputs, f"MultiheadAttention ({name}) keeps its embed dim")
    _heads(b, name, m)
    return (FIXED, FIXED)


def _mlp(b: Builder, name: str, layer: nn.TransformerEncoderLayer) -> None:
    act = layer.activation
    hidden = layer.linear1.out_features
    space = b.new_space(
        hidden, Member(f"{name}.linear1", "weight", 0, "out"), Member(f"{name}.linear2", "weight", 1, "in")
    )
    if not (act in _MLP_ACTIVATIONS or isinstance(act, (nn.ReLU, nn.GELU))):
        b.block([space], f"activation {act} of {name} is not known to be per-unit")


def encoder_rule(b: Builder, name: str, m: nn.Module, inputs: list[int]) -> State:
    b.block(inputs, f"{type(m).__name__} ({name}) normalizes over channels (LayerNorm)")
    if isinstance(m, nn.TransformerEncoder):
        layers = [(f"{name}.layers.{i}", layer) for i, layer in enumerate(m.layers)]
    else:
        layers = [(name, m)]
    for prefix, layer in layers:
        _heads(b, f"{prefix}.self_attn", layer.self_attn)
        _mlp(b, prefix, layer)
    return FIXED
