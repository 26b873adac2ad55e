"""Channel groups of Hugging Face transformer layers: whole heads and feed-forward neurons.

torch.fx cannot trace Hugging Face models (`transformers.utils.fx` is gone in transformers 5,
and plain tracing fails in the embeddings), so their groups come from module rules: a layer
whose class is registered here is read by its structure, without running it.

- Heads: q, k and v are `nn.Linear` rows reshaped into heads of `head_dim` with -1 heads, so a
  layer's forward works with any head count: three Linears, or GPT-2's one `c_attn` holding
  q, k and v at offsets 0, w and 2w (w = heads x head_dim; three members of one module). A
  group is one key/value head (with grouped-query attention, the `num_key_value_groups` query
  heads that read it): its q, k and v rows (role "head", all maskable) and its output
  projection's columns (role "in"). A pruned head zeroes all of them: the head then adds
  nothing, whatever its q/k/v biases give. `head_slicing.py` removes it and updates the
  module's head count.
- Feed-forward neurons: the rows of the up projection (and of the gate, in gated MLPs) with the
  columns of the down projection. A removed neuron still carries act(bias) (times the up bias,
  gated), a constant that `shrink.py` folds into the down projection's bias.
- The hidden size stays dense: LayerNorm/RMSNorm read all of it, and every layer adds to it.

Kept dense with a note: a model that returns its attention weights (`output_attentions`), an
attention module with parameters other than q/k/v/o (e.g. a norm over all heads), GPT-2's
cross-attention (`crossattention`, with `q_attn`), projections that are still transformers'
`Conv1D` (a model built outside `paiexport.models.hf`, which makes them `nn.Linear`), an
activation not known to be element-wise, and any layer whose shapes do not fit.

Supported (tested) families: BERT-style encoders (Bert, Roberta, Electra: `*Layer` with
`attention.self.{query,key,value}`, `attention.output.dense`, `intermediate.dense`,
`output.dense`), Llama-style decoders (Llama, Qwen2, Mistral: `*DecoderLayer` with
`self_attn.{q,k,v,o}_proj` and `mlp.{gate,up,down}_proj`), ViT-style encoders (ViT, DeiT,
I-JEPA, ViTMSN tested; ViTMAE, ViViT and AST share ViT's code in transformers 5.24: `*Layer`
with `attention.{q,k,v,o}_proj` and `mlp.fc1`/`mlp.fc2`) and GPT-2 (`GPT2Block` with
`attn.c_attn` and `attn.c_proj`, `mlp.c_fc` and `mlp.c_proj`; DecisionTransformer's block is the
same code). `scale_attn_by_inverse_layer_idx` and `reorder_and_upcast_attn` do not change
GPT-2's head layout (tested).
"""

from __future__ import annotations

from torch import nn

from paiexport.sparsity.depgraph import Builder, Member
from paiexport.sparsity.op_kinds import ELEMENTWISE_MODULES
from paiexport.sparsity.rule_registry import BlockRule, RuleRegistry

HIDDEN_DENSE = "keeps its hidden size dense (its LayerNorm reads all of it)"
RMS_DENSE = "keeps its hidden size dense (its RMSNorm reads all of it)"


def linear_at(root: nn.Module, path: str) -> nn.Linear | None:
    """The `nn.Linear` at the dotted attribute `path` under `root`, or None."""
    found: object = root
    for part in path.split("."):
        found = getattr(found, part, None)
    return found if isinstance(found, nn.Linear) else None


def _elementwise(act: object) -> bool:
    kind = type(act)
    return isinstance(act, ELEMENTWISE_MODULES) or kind.__module__.startswith("transformers.activations")


def _extra_parameters(module: nn.Module, known: tuple[str, ...]) -> list[str]:
    """Children of `module` holding parameters other than the `known` ones (e.g. a q norm)."""
    return [n for n, c in module.named_children() if n not in known and any(True for _ in c.parameters())]


def add_heads(
    b: Builder, name: str, attn: nn.Module, paths: tuple[str, str, str, str], head_dim: int, n_rep: int
) -> None:
    """One group per key/value head of the attention module `attn` (named `name`); q/k/v/o are
    the dotted paths of its projections, `n_rep` query heads read each key/value head."""
    q, k, v, o = (linear_at(attn, p) for p in paths)
    kind = f"{type(attn).__name__} ({name})"
    if None in (q, k, v, o) or head_dim < 1 or n_rep < 1:
        b.notes.append(f"attention {kind}: not the expected q/k/v/o Linear layout, heads kept dense")
        return
    kv_heads = k.out_features // head_dim
    fits = (
        k.out_features == v.out_features == kv_heads * head_dim
        and q.out_features == o.in_features == kv_heads * n_rep * head_dim
    )
    if not fits or kv_heads < 1:
        b.notes.append(f"attention {kind}: projection sizes do not fit the head count, heads kept dense")
        return
    full = [f"{name}.{p}" for p in paths]
    members = [Member(full[0], "weight", 0, "head", 0, head_dim * n_rep)]
    members += [Member(p, "weight", 0, "head", 0, head_dim) for p in full[1:3]]
    _head_space(b, attn, kind, kv_heads, [*members, Member(full[3], "weight", 1, "in", 0, head_dim * n_rep)])


def add_fused_heads(b: Builder, name: str, attn: nn.Module, paths: tuple[str, str], head_dim: int) -> None:
    """One group per head of `attn` (named `name`) whose q, k and v are one Linear (`paths[0]`:
    q, k, v rows at offsets 0, w, 2w for w = heads x `head_dim`) read by `paths[1]`."""
    qkv, o = (linear_at(attn, p) for p in paths)
    kind = f"{type(attn).__name__} ({name})"
    if qkv is None or o is None or head_dim < 1:
        b.notes.append(f"attention {kind}: {_not_linear(attn, paths)}, heads kept dense")
        return
    width = o.in_features
    if width % head_dim or width < head_dim or qkv.out_features != 3 * width:
        b.notes.append(f"attention {kind}: projection sizes do not fit the head count, heads kept dense")
        return
    full = [f"{name}.{p}" for p in paths]
    members = [Member(full[0], "weight", 0, "head", k * width, head_dim) for k in range(3)]
    _head_space(b, attn, kind, width // head_dim, [*members, Member(full[1], "weight", 1, "in", 0, head_dim)])


def _not_linear(attn: nn.Module, paths: tuple[str, ...]) -> str:
    if any(type(getattr(attn, p, None)).__name__ == "Conv1D" for p in paths):
        return "transformers Conv1D, not nn.Linear (model.name transformers:... converts them)"
    return "not the expected q/k/v/o Linear layout"


def _head_space(b: Builder, attn: nn.Module, kind: str, heads: int, members: list[Member]) -> None:
    """The heads' group, blocked when the model must keep them (`_head_blocker`)."""
    space = b.new_space(heads, *members)
    why = _head_blocker(attn)
    if why:
        b.block([space], f"attention heads of {kind} kept dense ({why})")


def _head_blocker(attn: nn.Module) -> str:
    config = getattr(attn, "config", None) or getattr(getattr(attn, "self", None), "config", None)
    if getattr(config, "output_attentions", False):
        return "the model returns its attention weights"
    return ""


def add_neurons(
    b: Builder, name: str, layer: nn.Module, producers: list[str], consumer: str, act: object
) -> None:
    """One group of feed-forward neurons of `layer` (named `name`): the rows of the `producers`
    (dotted Linear paths under it) and the columns of `consumer`."""
    ups = [linear_at(layer, p) for p in producers]
    down = linear_at(layer, consumer)
    if None in ups or down is None or len({u.out_features for u in ups} | {down.in_features}) != 1:
        b.notes.append(f"MLP of {type(layer).__name__} ({name}): not the expected Linear layout, kept dense")
        return
    members = [Member(f"{name}.{p}", "weight", 0, "out") for p in producers]
    down_member = Member(f"{name}.{consumer}", "weight", 1, "in")
    space = b.new_space(down.in_features, *members, down_member, kind="ffn")
    if not _elementwise(act):
        b.block([space], f"activation {type(act).__name__} of {name} is not known to be element-wise")


class BertLayerRule(BlockRule):
    """A BERT-style encoder layer: self-attention (and cross-attention) heads, FFN neurons."""

    dense_reason = HIDDEN_DENSE

    def groups(self, b: Builder, name: str, module: nn.Module) -> None:
        for part in ("attention", "crossattention"):
            attn = getattr(module, part, None)
            if attn is not None:
                self._heads(b, f"{name}.{part}", attn)
        act = getattr(getattr(module, "intermediate", None), "intermediate_act_fn", None)
        add_neurons(b, name, module, ["intermediate.dense"], "output.dense", act)

    def _heads(self, b: Builder, name: str, attn: nn.Module) -> None:
        inner = getattr(attn, "self", None)
        extra = _extra_parameters(inner, ("query", "key", "value")) if inner is not None else []
        if extra:
            b.notes.append(f"attention {name}: has {', '.join(extra)} besides q/k/v, heads kept dense")
            return
        paths = ("self.query", "self.key", "self.value", "output.dense")
        add_heads(b, name, attn, paths, int(getattr(inner, "attention_head_size", 0)), 1)


def _projection_heads(b: Builder, name: str, attn: nn.Module | None, where: str) -> None:
    """Heads of an attention module with separate `{q,k,v,o}_proj` Linears (named `name`)."""
    projections = ("q_proj", "k_proj", "v_proj", "o_proj")
    extra = _extra_parameters(attn, projections) if attn is not None else []
    if attn is None or extra:
        b.notes.append(
            f"attention of {where}: has {', '.join(extra) or 'no attention module'}, heads kept dense"
        )
        return
    head_dim = int(getattr(attn, "head_dim", 0))
    add_heads(b, name, attn, projections, head_dim, int(getattr(attn, "num_key_value_groups", 1)))


class DecoderLayerRule(BlockRule):
    """A Llama-style decoder layer: grouped-query attention heads, gated MLP neurons."""

    dense_reason = RMS_DENSE

    def groups(self, b: Builder, name: str, module: nn.Module) -> None:
        _projection_heads(b, f"{name}.self_attn", getattr(module, "self_attn", None), name)
        act = getattr(getattr(module, "mlp", None), "act_fn", None)
        add_neurons(b, name, module, ["mlp.gate_proj", "mlp.up_proj"], "mlp.down_proj", act)


class ViTLayerRule(BlockRule):
    """A ViT-style encoder layer: `attention.{q,k,v,o}_proj` heads, `mlp.fc1` -> `mlp.fc2` neurons."""

    dense_reason = HIDDEN_DENSE

    def groups(self, b: Builder, name: str, module: nn.Module) -> None:
        _projection_heads(b, f"{name}.attention", getattr(module, "attention", None), name)
        act = getattr(getattr(module, "mlp", None), "activation_fn", None)
        add_neurons(b, name, module, ["mlp.fc1"], "mlp.fc2", act)


class GPT2BlockRule(BlockRule):
    """A GPT-2 block: heads of the fused `attn.c_attn` (q, k, v) read by `attn.c_proj`, and
    `mlp.c_fc` -> `mlp.c_proj` neurons, once their `Conv1D`s are `nn.Linear`s (`models/hf.py`)."""

    dense_reason = HIDDEN_DENSE

    def groups(self, b: Builder, name: str, module: nn.Module) -> None:
        attn = getattr(module, "attn", None)
        extra = _extra_parameters(attn, ("c_attn", "c_proj")) if attn is not None else []
        if attn is None or extra:
            b.notes.append(
                f"attention of {name}: has {', '.join(extra) or 'no self-attention'}, heads kept dense"
            )
        else:
            add_fused_heads(b, f"{name}.attn", attn, ("c_attn", "c_proj"), int(getattr(attn, "head_dim", 0)))
        if getattr(module, "crossattention", None) is not None:
            b.notes.append(f"cross-attention of {name} kept dense (its q_attn reads another sequence)")
        act = getattr(getattr(module, "mlp", None), "act", None)
        add_neurons(b, name, module, ["mlp.c_fc"], "mlp.c_proj", act)


_BERT_STYLE = {"bert": "Bert", "roberta": "Roberta", "electra": "Electra"}
_LLAMA_STYLE = {"llama": "Llama", "qwen2": "Qwen2", "mistral": "Mistral"}
# Families whose *Layer, *Attention and *MLP are ViT's own code under another name (transformers 5.24).
_VIT_STYLE = {
    "vit": "ViT",
    "deit": "DeiT",
    "ijepa": "IJepa",
    "vit_mae": "ViTMAE",
    "vit_msn": "ViTMSN",
    "vivit": "Vivit",
    "audio_spectrogram_transformer": "AST",
}


def register_hf(rules: RuleRegistry) -> None:
    """The layers above, by qualified class name (transformers is not imported)."""
    for family, prefix in _BERT_STYLE.items():
        rules.module(f"transformers.models.{family}.modeling_{family}.{prefix}Layer", BertLayerRule())
    for family, prefix in _LLAMA_STYLE.items():
        rules.module(
            f"transformers.models.{family}.modeling_{family}.{prefix}DecoderLayer", DecoderLayerRule()
        )
    for family, prefix in _VIT_STYLE.items():
        rules.module(f"transformers.models.{family}.modeling_{family}.{prefix}Layer", ViTLayerRule())
    for kind in (
        "gpt2.modeling_gpt2.GPT2Block",
        "decision_transformer.modeling_decision_transformer.DecisionTransformerGPT2Block",
    ):
        rules.module(f"transformers.models.{kind}", GPT2BlockRule())
