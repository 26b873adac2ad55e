"""Channel groups inside attention modules (fx keeps torch.nn modules whole).

`nn.MultiheadAttention`: its embed dim is both input and output width and is read by the
surrounding LayerNorms, so the spaces around it stay dense. Its heads form a prunable group:
head h is the rows of q, k and v (role "qkv", `per` = head_dim) and the head's out_proj
columns (role "in"). Only out_proj is a maskable weight (masks live on Linear/Conv
`.weight`), so a pruned head is masked as its out_proj columns: the head then adds nothing.
`shrink_attention.py` removes a head whose out_proj columns or v rows are all zero, exactly.
Kept dense, with a note: `add_bias_kv` and `add_zero_attn` (extra key positions the pruned
module does not model), kdim/vdim != embed_dim, and a model that reads the attention weights.
`nn.TransformerEncoderLayer` / `nn.TransformerEncoder`: the same for attention, and the MLP
hidden units (linear1 rows with linear2 columns) are a prunable group: a removed unit carries
the constant activation(bias), which `shrink.py` folds into linear2's bias.
"""

from __future__ import annotations

import operator

from torch import fx, nn

from paiexport.sparsity.depgraph import FIXED, Builder, Member, State
from paiexport.sparsity.rule_registry import BlockRule, Call, RuleRegistry

_MLP_ACTIVATIONS = (nn.functional.relu, nn.functional.gelu)


def _head_blocker(m: nn.MultiheadAttention) -> str:
    """Why the heads of `m` cannot be removed exactly ("" when they can)."""
    if m.bias_k is not None:
        return "add_bias_kv"
    if m.add_zero_attn:
        return "add_zero_attn"
    if not m._qkv_same_embed_dim:
        return "kdim/vdim differ from embed_dim"
    return ""


def _heads(b: Builder, name: str, m: nn.MultiheadAttention, weights_read: str = "") -> None:
    dim = m.head_dim
    if m._qkv_same_embed_dim:
        rows = [Member(name, "in_proj_weight", 0, "qkv", k * m.embed_dim, dim) for k in range(3)]
    else:
        rows = [Member(name, f"{p}_proj_weight", 0, "qkv", 0, dim) for p in "qkv"]
    space = b.new_space(m.num_heads, *rows, Member(f"{name}.out_proj", "weight", 1, "in", 0, dim))
    why = weights_read or _head_blocker(m)
    if why:
        b.block([space], f"attention heads of {name} kept dense ({why})")


def _reads_weights(node: fx.Node) -> bool:
    """True when anything but `output[0]` of the attention call is used (an unpacked but
    unused `weights` is a getitem node without users)."""
    return any(not (u.target is operator.getitem and (u.args[1] == 0 or not u.users)) for u in node.users)


class AttentionRule(BlockRule):
    """nn.MultiheadAttention: its embed dim stays dense, its heads are a group."""

    def trace(self, call: Call) -> object:
        if not isinstance(call.state, State):
            return None
        name = str(call.node.target)
        call.builder.block(call.input_spaces(), f"MultiheadAttention ({name}) keeps its embed dim")
        weights_read = "the model reads its attention weights" if _reads_weights(call.node) else ""
        _heads(call.builder, name, call.module, weights_read)
        return (FIXED, FIXED)

    def groups(self, b: Builder, name: str, module: nn.Module) -> None:
        # Not traced: nothing says whether the model reads the weights it returns by default.
        _heads(b, name, module, "the model was not traced, its use of the attention weights is unknown")


def _mlp(b: Builder, name: str, layer: nn.TransformerEncoderLayer) -> None:
    act = layer.activation
    hidden = layer.linear1.out_features
    space = b.new_space(
        hidden, Member(f"{name}.linear1", "weight", 0, "out"), Member(f"{name}.linear2", "weight", 1, "in")
    )
    if not (act in _MLP_ACTIVATIONS or isinstance(act, (nn.ReLU, nn.GELU))):
        b.block([space], f"activation {act} of {name} is not known to be per-unit")


class EncoderRule(BlockRule):
    """nn.TransformerEncoderLayer / nn.TransformerEncoder: heads and MLP units of every layer."""

    dense_reason = "normalizes over channels (LayerNorm)"

    def groups(self, b: Builder, name: str, module: nn.Module) -> None:
        if isinstance(module, nn.TransformerEncoder):
            layers = [(f"{name}.layers.{i}", layer) for i, layer in enumerate(module.layers)]
        else:
            layers = [(name, module)]
        for prefix, layer in layers:
            if isinstance(layer.self_attn, nn.MultiheadAttention):  # not an already pruned one
                _heads(b, f"{prefix}.self_attn", layer.self_attn)
            _mlp(b, prefix, layer)


def register_attention(rules: RuleRegistry) -> None:
    rules.module(nn.MultiheadAttention, AttentionRule())
    for kind in (nn.TransformerEncoderLayer, nn.TransformerEncoder):
        rules.module(kind, EncoderRule())
