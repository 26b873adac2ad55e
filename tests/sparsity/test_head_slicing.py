"""Compact Hugging Face models: pruned heads and FFN neurons removed, exact against the masked model
at two sequence lengths, and the small model exports to ONNX with dynamic batch and sequence."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from hf_tiny import BERT, GPT2, HF_REASON, LLAMA, VIT, pixels, tiny, tiny_image, tokens
from torch import nn

from paiexport.inputs import Inputs, call_model, flat_outputs
from paiexport.sparsity.depgraph import DependencyGraph, build_graph
from paiexport.sparsity.groups import group_masks
from paiexport.sparsity.head_slicing import dead_heads, slice_heads
from paiexport.sparsity.masks import attach_masks, prunable_weights, strip_masks
from paiexport.sparsity.shrink import shrink_model

pytest.importorskip("transformers", reason=HF_REASON)


def keep_first(size: int, n: int) -> torch.Tensor:
    keep = torch.zeros(size, dtype=torch.bool)
    keep[torch.randperm(size, generator=torch.Generator().manual_seed(size + n))[:n]] = True
    return keep


def masked(model: nn.Module, graph: DependencyGraph, heads: list[int], neurons: list[int]) -> nn.Module:
    """`model` with layer i keeping `heads[i]` key/value heads and `neurons[i]` FFN neurons."""
    head_groups = [i for i in graph.prunable if any(m.role == "head" for m in graph.groups[i].members)]
    ffn_groups = [i for i in graph.prunable if i not in head_groups]
    keep = {g: keep_first(graph.groups[g].size, n) for g, n in zip(head_groups, heads, strict=True)}
    keep |= {g: keep_first(graph.groups[g].size, n) for g, n in zip(ffn_groups, neurons, strict=True)}
    attach_masks(model, group_masks(graph, keep, prunable_weights(model)))
    return strip_masks(model).eval()


def logits(model: nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return model(**inputs).logits


def assert_exact(full: nn.Module, small: nn.Module) -> None:
    for batch, length in ((3, 7), (2, 16)):
        inputs = tokens(batch, length)
        want, got = logits(full, inputs), logits(small, inputs)
        assert got.shape == want.shape
        assert float((want - got).abs().max()) <= 1e-4 * max(1.0, float(want.abs().max()))


def one_head_and_one_neuron(out: nn.Linear, head_dim: int, head: int, down: nn.Linear, neuron: int) -> None:
    """Zero, by hand, the output-projection columns of every head but `head` and the
    down-projection columns of every FFN neuron but `neuron` (their q/k/v and up rows stay)."""
    with torch.no_grad():
        kept = out.weight[:, head * head_dim : (head + 1) * head_dim].clone()
        out.weight.zero_()
        out.weight[:, head * head_dim : (head + 1) * head_dim] = kept
        column = down.weight[:, neuron].clone()
        down.weight.zero_()
        down.weight[:, neuron] = column


def assert_every_output_exact(full: nn.Module, small: nn.Module, batches: list[Inputs]) -> None:
    for inputs in batches:
        with torch.no_grad():
            want, got = flat_outputs(call_model(full, inputs)), flat_outputs(call_model(small, inputs))
        assert [t.shape for t in got] == [t.shape for t in want] and want
        for w, g in zip(want, got, strict=True):
            assert float((w - g).abs().max()) <= 1e-4 * max(1.0, float(w.abs().max()))


def test_vit_keeps_one_head_and_one_neuron_in_its_last_layer():
    model = tiny_image(VIT)
    graph = build_graph(model, pixels(2))
    full = masked(model, graph, heads=[2, 4], neurons=[16, 128])  # layer 0 by group masks
    last = full.vit.layers[1]
    one_head_and_one_neuron(last.attention.o_proj, 16, 2, last.mlp.fc2, 5)  # layer 1 by hand
    result = shrink_model(full, graph, pixels(2))
    sizes = [
        (
            layer.attention.num_attention_heads,
            *(tuple(getattr(layer.attention, f"{p}_proj").weight.shape) for p in "qkvo"),
            tuple(layer.mlp.fc1.weight.shape),
            tuple(layer.mlp.fc2.weight.shape),
        )
        for layer in result.model.vit.layers
    ]
    assert sizes == [
        (2, (32, 64), (32, 64), (32, 64), (64, 32), (16, 64), (64, 16)),
        (1, (16, 64), (16, 64), (16, 64), (64, 16), (1, 64), (64, 1)),
    ]
    assert result.removed == {0: 2, 1: 112, 2: 3, 3: 127}
    small_last = result.model.vit.layers[1]
    assert torch.equal(small_last.attention.k_proj.weight, last.attention.k_proj.weight[32:48])
    assert torch.equal(small_last.mlp.fc1.weight, last.mlp.fc1.weight[5:6])
    assert_every_output_exact(full, result.model, [pixels(3), pixels(1, seed=2)])


@pytest.mark.parametrize(
    ("model_type", "architecture"),
    [("deit", "DeiTForImageClassificationWithTeacher"), ("ijepa", "IJepaForImageClassification")],
)
def test_other_vit_style_families_compact_exactly(model_type, architecture):
    model = tiny_image({**VIT, "model_type": model_type, "architectures": [architecture]})
    graph = build_graph(model, pixels(2))
    full = masked(model, graph, heads=[1, 2], neurons=[1, 16])
    small = shrink_model(full, graph, pixels(2)).model
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in full.parameters())
    assert_every_output_exact(full, small, [pixels(3)])


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {
            "attn_implementation": "eager",
            "reorder_and_upcast_attn": True,
            "scale_attn_by_inverse_layer_idx": True,
        },
    ],
)
def test_gpt2_keeps_one_head_and_one_neuron_in_its_last_layer(overrides):
    model = tiny(GPT2, causal_lm=True, **overrides)
    graph = build_graph(model, tokens(2, 8)["input_ids"])
    full = masked(model, graph, heads=[2, 4], neurons=[16, 128])  # layer 0 by group masks
    last = full.transformer.h[1]
    one_head_and_one_neuron(last.attn.c_proj, 16, 1, last.mlp.c_proj, 7)  # layer 1 by hand
    result = shrink_model(full, graph, tokens(2, 8)["input_ids"])
    sizes = [
        (
            block.attn.num_heads,
            block.attn.split_size,
            *(
                tuple(p.weight.shape)
                for p in (block.attn.c_attn, block.attn.c_proj, block.mlp.c_fc, block.mlp.c_proj)
            ),
        )
        for block in result.model.transformer.h
    ]
    assert sizes == [
        (2, 32, (96, 64), (64, 32), (16, 64), (64, 16)),
        (1, 16, (48, 64), (64, 16), (1, 64), (64, 1)),
    ]
    assert result.removed == {0: 2, 1: 112, 2: 3, 3: 127}
    small = result.model
    kept = [r for off in (0, 64, 128) for r in range(off + 16, off + 32)]  # head 1's q, k and v rows
    assert torch.equal(small.transformer.h[1].attn.c_attn.weight, last.attn.c_attn.weight[kept])
    assert torch.equal(small.transformer.h[1].attn.c_attn.bias, last.attn.c_attn.bias[kept])
    assert small.lm_head.weight is small.transformer.wte.weight  # still tied
    assert_every_output_exact(full, small, [tokens(3, 7), tokens(2, 16)])
    # Still causal: a later token changes nothing before it.
    ids = tokens(1, 10)["input_ids"]
    changed = ids.clone()
    changed[0, 6:] = (changed[0, 6:] + 1) % 50
    with torch.no_grad():
        before, after = small(ids).logits[0], small(changed).logits[0]
    assert float((before[:6] - after[:6]).abs().max()) <= 1e-6 < float((before[6:] - after[6:]).abs().max())


def test_bert_at_half_the_heads_and_a_quarter_of_the_neurons():
    model = tiny(BERT)
    graph = build_graph(model, tokens(2, 8)["input_ids"])
    full = masked(model, graph, heads=[2, 1], neurons=[16, 1])  # layer 1: one head, one neuron left
    result = shrink_model(full, graph, tokens(2, 8)["input_ids"])
    small = result.model
    sizes = [
        (
            layer.attention.self.num_attention_heads,
            layer.attention.self.all_head_size,
            tuple(layer.attention.self.query.weight.shape),
            tuple(layer.attention.self.value.bias.shape),
            tuple(layer.attention.output.dense.weight.shape),
            tuple(layer.intermediate.dense.weight.shape),
            tuple(layer.output.dense.weight.shape),
        )
        for layer in small.bert.encoder.layer
    ]
    assert sizes == [
        (2, 16, (16, 32), (16,), (32, 16), (16, 32), (32, 16)),
        (1, 8, (8, 32), (8,), (32, 8), (1, 32), (32, 1)),
    ]
    assert result.removed == {0: 2, 1: 48, 2: 3, 3: 63}
    assert_exact(full, small)
    # The masked model is untouched, and a removed neuron's gelu(bias) went into the output bias.
    assert full.bert.encoder.layer[0].attention.self.num_attention_heads == 4
    assert not torch.equal(
        small.bert.encoder.layer[0].output.dense.bias, full.bert.encoder.layer[0].output.dense.bias
    )


def test_llama_grouped_query_heads_and_gated_neurons():
    model = tiny(LLAMA, causal_lm=True)
    graph = build_graph(model, tokens(2, 8)["input_ids"])
    full = masked(model, graph, heads=[1, 1], neurons=[16, 1])
    small = shrink_model(full, graph, tokens(2, 8)["input_ids"]).model
    attn, mlp = small.model.layers[1].self_attn, small.model.layers[1].mlp
    shapes = [tuple(p.weight.shape) for p in (attn.q_proj, attn.k_proj, attn.v_proj, attn.o_proj)]
    assert shapes == [(16, 32), (8, 32), (8, 32), (32, 16)]  # one key/value head and its two query heads
    assert attn.num_key_value_groups == 2
    assert [tuple(p.weight.shape) for p in (mlp.gate_proj, mlp.up_proj, mlp.down_proj)] == [
        (1, 32),
        (1, 32),
        (32, 1),
    ]
    assert tuple(small.model.layers[0].mlp.down_proj.weight.shape) == (32, 16)
    assert_exact(full, small)


@pytest.mark.parametrize(
    ("family", "causal"), [("roberta", False), ("electra", False), ("qwen2", True), ("mistral", True)]
)
def test_other_registered_families_compact_exactly(family, causal):
    config = {**(LLAMA if causal else BERT), "model_type": family}
    if family == "roberta":
        config["pad_token_id"] = 1
    model = tiny(config, causal_lm=causal)
    graph = build_graph(model, tokens(2, 8)["input_ids"])
    assert len(graph.prunable) == 4
    full = masked(model, graph, heads=[1, 1], neurons=[16, 1])
    small = shrink_model(full, graph, tokens(2, 8)["input_ids"]).model
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in full.parameters())
    assert_exact(full, small)


def test_a_head_is_removed_only_when_its_output_columns_are_zero_and_one_is_always_kept():
    model = tiny(BERT)
    graph = build_graph(model, tokens(2, 8)["input_ids"])
    modules = dict(model.named_modules())
    group = graph.groups[0]
    assert not dead_heads(group, modules).any()
    with torch.no_grad():
        model.bert.encoder.layer[0].attention.self.query.weight.zero_()  # q rows alone do not make it dead
        assert not dead_heads(group, modules).any()
        model.bert.encoder.layer[0].attention.output.dense.weight.zero_()
    assert dead_heads(group, modules).tolist() == [False, True, True, True]
    assert slice_heads(model, graph) == {0: 3}
    assert model.bert.encoder.layer[0].attention.self.num_attention_heads == 1


@pytest.mark.parametrize(("config", "causal"), [(BERT, False), (GPT2, True)], ids=["bert", "gpt2"])
def test_the_compact_model_exports_with_dynamic_batch_and_sequence(tmp_path, config, causal):
    onnxruntime = pytest.importorskip("onnxruntime")
    model = tiny(config, causal_lm=causal)
    graph = build_graph(model, tokens(2, 8)["input_ids"])
    full = masked(model, graph, heads=[2, 1], neurons=[16, 1])
    small = shrink_model(full, graph, tokens(2, 8)["input_ids"]).model
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence")
    dims = {"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: seq}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(small, (), kwargs=tokens(2, 9), dynamo=True, dynamic_shapes=dims)
    program.save(str(tmp_path / "model.compact.onnx"))
    session = onnxruntime.InferenceSession(str(tmp_path / "model.compact.onnx"))
    assert [(i.name, i.type) for i in session.get_inputs()] == [
        ("input_ids", "tensor(int64)"),
        ("attention_mask", "tensor(int64)"),
    ]
    for batch_size, length in ((1, 5), (3, 17)):
        inputs = tokens(batch_size, length)
        got = session.run(None, {k: v.numpy() for k, v in inputs.items()})[0]
        assert np.abs(got - logits(full, inputs).numpy()).max() <= 1e-4
