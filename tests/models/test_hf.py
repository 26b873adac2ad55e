"""model.name "transformers:<class>": built from a config or a local save_pretrained folder, never
downloaded, never remote code; every bad input one line naming the field."""

from __future__ import annotations

import copy
import json
import sys

import pytest
import torch
import yaml
from clitest import invoke, one_line_error
from hf_tiny import BERT, GPT2, HF_REASON, tokens

from paiexport.errors import UserError
from paiexport.models.checks import check_sample_batch
from paiexport.models.factory import build_factory_model
from paiexport.models.hf import linear_conv1d
from paiexport.tasks import make_task
from paiexport.tasks.base import TaskConfig

AUTO = "transformers:AutoModelForSequenceClassification"
CONFIG = {k: v for k, v in BERT.items() if k != "num_labels"}


def build(spec: str = AUTO, args: dict | None = None, folders: list | None = None) -> torch.nn.Module:
    return build_factory_model(spec, args if args is not None else {"config": CONFIG}, (8,), 3, folders or [])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"config": 3}, "args.config: expected a mapping of config keys (e.g. {model_type: bert})"),
        ({"config": {}, "pretrained": "x"}, "args: give exactly one of config (a mapping) or pretrained"),
        ({"weights": "x"}, "args: transformers models take config or pretrained, not weights"),
        ({"pretrained": 3}, "args.pretrained: expected the path of a save_pretrained folder"),
    ],
)
def test_bad_args_exit_2_before_anything_is_imported(tmp_path, tiny_recipe_dict, args, message):
    tiny_recipe_dict["model"] = {"name": AUTO, "args": args}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(tiny_recipe_dict))
    one_line_error(invoke("run", path, "--out", tmp_path / "run"), message)
    assert not (tmp_path / "run").exists()


def test_without_transformers_the_extra_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # as if not installed
    with pytest.raises(UserError) as caught:
        build()
    assert str(caught.value) == f"model.name: {AUTO} needs transformers (pip install 'paiexport[hf]')"


def test_a_model_from_config_takes_its_labels_from_the_data_and_outputs_a_dict():
    pytest.importorskip("transformers", reason=HF_REASON)
    model = build()
    assert type(model).__name__ == "BertForSequenceClassification"
    assert (model.config.num_labels, model.config.use_cache, model.config.hidden_size) == (3, False, 32)
    out = model(tokens(2, 8)["input_ids"])
    assert isinstance(out, dict) and list(out) == ["logits"]  # a ModelOutput is a dict
    task = make_task(TaskConfig(name="classification"))
    assert task.pick(out) is out["logits"] and out["logits"].shape == (2, 3)
    check_sample_batch(model, tokens(2, 8)["input_ids"], 3)  # the dict's logits are checked
    concrete = build("transformers:BertForSequenceClassification", {"config": {**CONFIG, "num_labels": 5}})
    assert concrete.config.num_labels == 5 and concrete.config.model_type == "bert"


@pytest.mark.parametrize(
    ("spec", "config", "message"),
    [
        (AUTO, {**CONFIG, "hiden_size": 3}, "model.args.config: unknown key 'hiden_size' for bert"),
        (
            AUTO,
            {"hidden_size": 32},
            f"model.args.config: {AUTO[13:]} needs model_type (e.g. model_type: bert)",
        ),
        (AUTO, {"model_type": "nosuch"}, "model.args.config: unknown model_type 'nosuch'"),
        (
            "transformers:BertForSequenceClassification",
            {"model_type": "llama"},
            "model.args.config: model_type 'llama' does not fit BertForSequenceClassification (bert)",
        ),
        ("transformers:NoSuchModel", {}, "model.name: transformers has no model class 'NoSuchModel'"),
        ("transformers:AutoConfig", {}, "model.name: transformers has no model class 'AutoConfig'"),
        (
            AUTO,
            {**CONFIG, "hidden_size": 30},
            f"model.args: {AUTO} raised ValueError: The hidden size (30) is not a multiple",
        ),
        (
            AUTO,
            {**CONFIG, "auto_map": {"AutoModel": "mine.Model"}},
            "model.args.config: needs trust_remote_code (custom model code), which paiexport never enables",
        ),
        (
            AUTO,
            {**CONFIG, "hidden_size": 2**16, "intermediate_size": 2**18},
            f"model.args.config: {AUTO} needs about",
        ),
    ],
)
def test_bad_configs_are_one_line_naming_the_field(spec, config, message):
    pytest.importorskip("transformers", reason=HF_REASON)
    with pytest.raises(UserError) as caught:
        build(spec, {"config": config})
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def test_a_saved_folder_loads_from_beside_the_recipe(tmp_path):
    pytest.importorskip("transformers", reason=HF_REASON)
    model = build().eval()
    model.save_pretrained(tmp_path / "saved")
    loaded = build(args={"pretrained": "saved"}, folders=[tmp_path]).eval()
    inputs = tokens(2, 8)
    assert torch.equal(model(**inputs).logits, loaded(**inputs).logits)
    assert loaded.config.use_cache is False


def test_saved_folders_that_need_code_or_pickles_are_refused(tmp_path):
    pytest.importorskip("transformers", reason=HF_REASON)
    build().save_pretrained(tmp_path / "remote")
    config = json.loads((tmp_path / "remote" / "config.json").read_text())
    (tmp_path / "remote" / "config.json").write_text(json.dumps({**config, "auto_map": {"AutoModel": "m.M"}}))
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text(json.dumps(config))
    (pickled / "pytorch_model.bin").write_bytes(b"not loaded")
    cases = {
        "remote": "model.args.pretrained: remote: needs trust_remote_code",
        "pickled": "model.args.pretrained: pickled has no .safetensors weights (pickled weights are never",
        "absent": "model.args.pretrained: absent: not a folder with config.json",
    }
    for folder, message in cases.items():
        with pytest.raises(UserError) as caught:
            build(args={"pretrained": folder}, folders=[tmp_path])
        assert str(caught.value).startswith(message)


def conv1d_gpt2() -> torch.nn.Module:
    """A tiny GPT-2 as transformers builds it (Conv1D projections), with random Conv1D biases."""
    import transformers

    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(
        transformers.GPT2Config(**{k: v for k, v in GPT2.items() if k != "model_type"})
    )
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, transformers.pytorch_utils.Conv1D):
                module.bias.normal_(0.0, 0.5)
    return model.eval()


def assert_same_outputs(a: torch.nn.Module, b: torch.nn.Module) -> None:
    inputs = tokens(3, 9)
    with torch.no_grad():
        want, got = a(**inputs).logits, b(**inputs).logits
    assert want.dtype == got.dtype and float((want - got).abs().max()) <= 1e-6


def conv1ds(model: torch.nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if type(m).__name__ == "Conv1D"]


def test_conv1d_becomes_an_exactly_equal_linear():
    pytest.importorskip("transformers", reason=HF_REASON)
    original = conv1d_gpt2().double()
    original.transformer.h[0].attn.c_attn.weight.requires_grad_(False)
    model = copy.deepcopy(original)
    assert len(conv1ds(model)) == 8 and linear_conv1d(model) == 8 and conv1ds(model) == []
    before, after = original.transformer.h[0].attn.c_attn, model.transformer.h[0].attn.c_attn
    assert isinstance(after, torch.nn.Linear) and (after.in_features, after.out_features) == (64, 192)
    assert torch.equal(after.weight, before.weight.T) and after.weight.dtype == torch.float64
    assert torch.equal(after.bias, before.bias)
    assert not after.weight.requires_grad and model.transformer.h[0].mlp.c_fc.weight.requires_grad
    assert_same_outputs(original, model)
    assert model.lm_head.weight is model.transformer.wte.weight
    from transformers.pytorch_utils import Conv1D

    shared = Conv1D(4, 3)
    twice = torch.nn.Sequential(shared, torch.nn.ReLU(), shared)
    assert linear_conv1d(twice) == 1 and twice[0] is twice[2] and isinstance(twice[2], torch.nn.Linear)


def test_gpt2_from_a_config_or_a_saved_folder_has_linear_projections(tmp_path):
    pytest.importorskip("transformers", reason=HF_REASON)
    spec = "transformers:GPT2LMHeadModel"
    config = {k: v for k, v in GPT2.items() if k != "model_type"}
    built = build(spec, {"config": config})
    assert conv1ds(built) == [] and isinstance(built.transformer.h[1].mlp.c_proj, torch.nn.Linear)
    original = conv1d_gpt2()
    original.save_pretrained(tmp_path / "gpt2")
    loaded = build(spec, {"pretrained": "gpt2"}, folders=[tmp_path]).eval()
    assert conv1ds(loaded) == [] and isinstance(loaded.transformer.h[0].attn.c_attn, torch.nn.Linear)
    assert_same_outputs(original, loaded)
