"""Tiny Hugging Face models from config (random init, nothing downloaded) for the tests that need
transformers; those tests skip with a reason where it is not installed."""

from __future__ import annotations

import torch
from torch import nn

from paiexport.models.hf import linear_conv1d

HF_REASON = "needs transformers (pip install 'paiexport[hf]')"
# `--set` overrides that shrink the bundled transformer recipes for CLI tests: hidden 32 in 4
# heads of 8, FFN 64, one epoch at a higher learning rate so the tiny model learns in it.
TINY_RECIPE_SETS = [
    "model.args.config.hidden_size=32",
    "model.args.config.num_attention_heads=4",
    "model.args.config.intermediate_size=64",
    "train.epochs=1",
    "train.optimizer.lr=0.002",
    "bench.batch_sizes=[1]",
]
VOCAB = 50

# BERT-style encoder: 2 layers, hidden 32, 4 heads of 8, FFN 64.
BERT = {
    "model_type": "bert",
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 64,
    "vocab_size": VOCAB,
    "max_position_embeddings": 32,
    "num_labels": 3,
}
# Llama-style decoder (causal): grouped-query attention, 4 query heads on 2 key/value heads.
LLAMA = {
    "model_type": "llama",
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 64,
    "vocab_size": VOCAB,
    "max_position_embeddings": 32,
    "use_cache": False,
}
# GPT-2 decoder (causal): 2 layers, hidden 64, 4 heads of 16, FFN 128; q, k and v in one projection.
GPT2 = {
    "model_type": "gpt2",
    "n_embd": 64,
    "n_layer": 2,
    "n_head": 4,
    "n_inner": 128,
    "vocab_size": VOCAB,
    "n_positions": 32,
    "bos_token_id": 0,
    "eos_token_id": 0,
    "use_cache": False,
}
# ViT-style image classifier: 2 layers, hidden 64, 4 heads of 16, FFN 128, 16x16 images in 4x4 patches.
VIT = {
    "model_type": "vit",
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 128,
    "image_size": 16,
    "patch_size": 4,
    "num_labels": 3,
}


def tiny(config: dict, causal_lm: bool = False, seed: int = 0, **overrides: object) -> nn.Module:
    """A model of `config` (with `overrides`) in eval mode: sequence classification, or causal LM,
    as paiexport builds it (transformers' Conv1D layers made nn.Linear, `models/hf.py`).

    Every Linear bias is random (transformers initializes them to zero), so a removed neuron's
    act(bias) and a removed head's biases are really there to fold or drop."""
    auto = "AutoModelForCausalLM" if causal_lm else "AutoModelForSequenceClassification"
    return _build(auto, config, seed, overrides)


def tiny_image(config: dict, seed: int = 0, **overrides: object) -> nn.Module:
    """An image classifier of `config` (with `overrides`) in eval mode, biases random as in `tiny`."""
    return _build("AutoModelForImageClassification", config, seed, overrides)


def _build(auto: str, config: dict, seed: int, overrides: dict) -> nn.Module:
    import transformers

    torch.manual_seed(seed)
    raw = {**config, **overrides}
    kind = raw.pop("model_type")
    cfg = transformers.AutoConfig.for_model(kind, **raw)
    model = getattr(transformers, auto).from_config(cfg).eval()
    linear_conv1d(model)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Linear) and module.bias is not None:
                module.bias.normal_(0.0, 0.5)
    return model


def tokens(batch: int, length: int, seed: int = 1) -> dict[str, torch.Tensor]:
    """Token ids and an attention mask with the last two positions of the first row padded."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, VOCAB, (batch, length), generator=g)
    mask = torch.ones_like(ids)
    mask[0, -2:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def pixels(batch: int, size: int = 16, seed: int = 1) -> torch.Tensor:
    """Random images, (batch, 3, size, size) float."""
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))
