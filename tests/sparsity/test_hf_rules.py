"""Channel groups of Hugging Face layers: whole heads and FFN neurons, the hidden size dense with
its reason, and whatever the rules do not know kept dense with a note naming it."""

from __future__ import annotations

import pytest
import torch
from hf_tiny import BERT, GPT2, HF_REASON, LLAMA, VIT, VOCAB, pixels, tiny, tiny_image, tokens

from paiexport.sparsity.depgraph import build_graph
from paiexport.sparsity.hf_rules import DecoderLayerRule
from paiexport.sparsity.rules import builtin_rules

pytest.importorskip("transformers", reason=HF_REASON)


def members(graph) -> list[tuple]:
    """Every group as (size, prunable, note, [(module, role, dim, per)])."""
    return [
        (g.size, g.prunable, g.note, [(m.module, m.role, m.dim, m.per) for m in g.members])
        for g in graph.groups
    ]


def test_bert_heads_and_ffn_neurons_per_layer():
    graph = build_graph(tiny(BERT), tokens(2, 8)["input_ids"])
    expected = []
    for i in range(2):
        layer = f"bert.encoder.layer.{i}"
        heads = [(f"{layer}.attention.self.{p}", "head", 0, 8) for p in ("query", "key", "value")]
        expected.append((4, True, "", [*heads, (f"{layer}.attention.output.dense", "in", 1, 8)]))
        ffn = [(f"{layer}.intermediate.dense", "out", 0, 1), (f"{layer}.output.dense", "in", 1, 1)]
        expected.append((64, True, "", ffn))
    assert members(graph) == expected
    assert graph.notes[0].endswith(
        "channel groups come from module rules (2 blocks), everything outside them stays dense, and so "
        "does the width between them (BertLayer keeps its hidden size dense (its LayerNorm reads all of it))"
    )
    assert graph.notes[0].startswith("cannot trace: ")


def test_llama_groups_are_key_value_heads_with_their_query_heads_and_gated_neurons():
    graph = build_graph(tiny(LLAMA, causal_lm=True), tokens(2, 8)["input_ids"])
    layer = "model.layers.0"
    attn = f"{layer}.self_attn"
    assert members(graph)[:2] == [
        (
            2,
            True,
            "",
            [
                (f"{attn}.q_proj", "head", 0, 16),  # two query heads of 8 per key/value head
                (f"{attn}.k_proj", "head", 0, 8),
                (f"{attn}.v_proj", "head", 0, 8),
                (f"{attn}.o_proj", "in", 1, 16),
            ],
        ),
        (
            64,
            True,
            "",
            [
                (f"{layer}.mlp.gate_proj", "out", 0, 1),
                (f"{layer}.mlp.up_proj", "out", 0, 1),
                (f"{layer}.mlp.down_proj", "in", 1, 1),
            ],
        ),
    ]
    assert len(graph.groups) == 4 and "RMSNorm reads all of it" in graph.notes[0]


def test_vit_heads_and_ffn_neurons_per_layer():
    graph = build_graph(tiny_image(VIT), pixels(2))
    expected = []
    for i in range(2):
        attn, mlp = f"vit.layers.{i}.attention", f"vit.layers.{i}.mlp"
        heads = [(f"{attn}.{p}_proj", "head", 0, 16) for p in "qkv"]
        expected.append((4, True, "", [*heads, (f"{attn}.o_proj", "in", 1, 16)]))
        expected.append((128, True, "", [(f"{mlp}.fc1", "out", 0, 1), (f"{mlp}.fc2", "in", 1, 1)]))
    assert members(graph) == expected
    assert [g.kind for g in graph.groups] == ["", "ffn", "", "ffn"]
    assert graph.notes[0].endswith("(ViTLayer keeps its hidden size dense (its LayerNorm reads all of it))")


@pytest.mark.parametrize(
    ("model_type", "architecture", "layer"),
    [
        ("deit", "DeiTForImageClassification", "deit.layers.1"),
        ("ijepa", "IJepaForImageClassification", "ijepa.layers.1"),
        ("vit_msn", "ViTMSNForImageClassification", "vit.layers.1"),
    ],
)
def test_vit_style_families_share_the_rule(model_type, architecture, layer):
    config = {**VIT, "model_type": model_type, "architectures": [architecture]}
    graph = build_graph(tiny_image(config), pixels(2))
    assert [(g.size, g.prunable) for g in graph.groups] == [(4, True), (128, True)] * 2
    assert graph.groups[2].members[0].module == f"{layer}.attention.q_proj"


def test_a_model_that_returns_its_attention_weights_keeps_its_heads():
    graph = build_graph(tiny(BERT, output_attentions=True), tokens(2, 8)["input_ids"])
    heads = [g for g in graph.groups if g.size == 4]
    assert [g.prunable for g in heads] == [False, False]
    assert heads[0].note == (
        "attention heads of BertAttention (bert.encoder.layer.0.attention) kept dense "
        "(the model returns its attention weights)"
    )
    assert all(g.prunable for g in graph.groups if g.size == 64)


def test_unknown_attention_is_named_and_left_dense():
    neox = {"model_type": "gpt_neox", "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4}
    model = tiny({**neox, "intermediate_size": 64, "vocab_size": VOCAB}, causal_lm=True)
    graph = build_graph(model, tokens(2, 8)["input_ids"])
    assert graph.groups == []
    assert graph.notes[1] == (
        "no rule for attention GPTNeoXAttention (gpt_neox.layers.0.attention), "
        "GPTNeoXAttention (gpt_neox.layers.1.attention): kept dense"
    )


def test_gpt2_heads_are_three_spans_of_the_fused_projection():
    graph = build_graph(tiny(GPT2, causal_lm=True), tokens(2, 8)["input_ids"])
    expected = []
    for i in range(2):
        attn, mlp = f"transformer.h.{i}.attn", f"transformer.h.{i}.mlp"
        heads = [(f"{attn}.c_attn", "head", 0, 16)] * 3
        expected.append((4, True, "", [*heads, (f"{attn}.c_proj", "in", 1, 16)]))
        expected.append((128, True, "", [(f"{mlp}.c_fc", "out", 0, 1), (f"{mlp}.c_proj", "in", 1, 1)]))
    assert members(graph) == expected
    # q, k and v rows of head h: c_attn rows 16h..16h+15 at offsets 0, 64 and 128.
    assert [m.span(4) for m in graph.groups[2].members] == [
        range(0, 64),
        range(64, 128),
        range(128, 192),
        range(0, 64),
    ]
    assert graph.notes[0].endswith("(GPT2Block keeps its hidden size dense (its LayerNorm reads all of it))")


def test_a_gpt2_with_conv1d_projections_keeps_them_dense_with_a_note():
    """Built outside paiexport, a GPT-2 still has transformers' Conv1D, which no mask reaches."""
    import transformers

    raw = {k: v for k, v in GPT2.items() if k != "model_type"}
    graph = build_graph(
        transformers.GPT2LMHeadModel(transformers.GPT2Config(**raw)), tokens(2, 8)["input_ids"]
    )
    assert graph.groups == []
    assert graph.notes[1:3] == [
        "attention GPT2Attention (transformer.h.0.attn): transformers Conv1D, not nn.Linear "
        "(model.name transformers:... converts them), heads kept dense",
        "MLP of GPT2Block (transformer.h.0): not the expected Linear layout, kept dense",
    ]


def test_gpt2_cross_attention_and_returned_attention_weights_stay_dense():
    graph = build_graph(tiny(GPT2, causal_lm=True, add_cross_attention=True), tokens(2, 8)["input_ids"])
    assert [(g.size, g.prunable) for g in graph.groups] == [(4, True), (128, True)] * 2
    assert "cross-attention of transformer.h.1 kept dense (its q_attn reads another sequence)" in graph.notes
    graph = build_graph(tiny(GPT2, causal_lm=True, output_attentions=True), tokens(2, 8)["input_ids"])
    assert [(g.size, g.prunable) for g in graph.groups] == [(4, False), (128, True)] * 2
    assert graph.groups[0].note == (
        "attention heads of GPT2Attention (transformer.h.0.attn) kept dense "
        "(the model returns its attention weights)"
    )


def test_an_attention_with_a_norm_over_its_heads_is_not_guessed():
    """Qwen3 normalizes q and k: registered with the Llama rule by a user, its heads stay dense."""
    import transformers

    rules = builtin_rules()
    rules.module(transformers.models.qwen3.modeling_qwen3.Qwen3DecoderLayer, DecoderLayerRule())
    config = {**LLAMA, "model_type": "qwen3", "head_dim": 8}
    graph = build_graph(tiny(config, causal_lm=True), tokens(2, 8)["input_ids"], rules)
    assert [g.size for g in graph.groups] == [64, 64]  # FFN neurons only
    assert "attention of model.layers.0: has q_norm, k_norm, heads kept dense" in graph.notes


def test_an_activation_not_known_to_be_elementwise_keeps_its_neurons():
    model = tiny(BERT)
    layer = model.bert.encoder.layer[0]
    layer.intermediate.intermediate_act_fn = torch.nn.Softmax(dim=-1)  # mixes the neurons
    graph = build_graph(model, tokens(2, 8)["input_ids"])
    ffn = [g for g in graph.groups if g.size == 64]
    assert [g.prunable for g in ffn] == [False, True]
    assert ffn[0].note == "activation Softmax of bert.encoder.layer.0 is not known to be element-wise"
