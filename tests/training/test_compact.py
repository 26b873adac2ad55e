"""train.compact: the physically smaller model is trained and exported."""

import copy
import json

import onnx
import pytest
import torch
from hf_tiny import BERT, HF_REASON, tiny, tokens
from typer.testing import CliRunner

from paiexport.cli import app
from paiexport.errors import UserError
from paiexport.models import ModelName, build_model
from paiexport.recipe import load_recipe
from paiexport.sparsity.masks import attach_masks
from paiexport.sparsity.structure import select_structured
from paiexport.sparsity.types import SparsityConfig
from paiexport.training.compact import shrink_for_training

runner = CliRunner()


def channel_recipe(raw: dict) -> dict:
    raw["model"] = {"name": "cnn1d", "args": {"channels": [8, 8, 8], "hidden": 16}}
    raw["sparsity"] = {"target": 0.5, "distribution": "uniform", "structure": "channel"}
    raw["train"].update({"epochs": 1, "compact": True})
    raw["export"]["formats"] = ["dense", "compact"]
    return raw


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"sparsity": {"target": 0.5}}, r"train\.compact: needs sparsity\.structure: channel"),
        ({"method": {"name": "gmp"}}, r"train\.compact: needs static masks.*gmp"),
        ({"method": {"name": "lth"}}, r"train\.compact: needs static masks.*lth"),
    ],
)
def test_compact_training_needs_static_channel_masks(write_recipe, tiny_recipe_dict, change, message):
    raw = channel_recipe(tiny_recipe_dict)
    raw.update(change)
    with pytest.raises(UserError, match=message) as info:
        load_recipe(write_recipe(raw))
    assert "\n" not in str(info.value)


def test_shrunk_model_trains_like_the_masked_one_and_has_only_kept_channels():
    torch.manual_seed(0)
    model = build_model(ModelName.cnn1d, {"channels": [8, 8, 8], "hidden": 16}, (1, 40), 5)
    for m in model.modules():  # nonzero BN shifts: the constants of pruned channels must be folded
        if isinstance(m, torch.nn.BatchNorm1d):
            m.bias.data.uniform_(-1, 1)
            m.running_var.fill_(0.5)  # as left by scoring passes: training re-estimates them
    x = torch.randn(16, 1, 40)
    scores = {
        n: p.detach().abs() for n, p in model.named_parameters() if n.endswith("weight") and p.dim() > 1
    }
    cfg = SparsityConfig(target=0.5, distribution="uniform", structure="channel")
    attach_masks(model, select_structured(scores, model, cfg, x))
    reference = copy.deepcopy(model).train()
    small = shrink_for_training(model, x)
    # In training mode (batch statistics) a pruned channel carries exactly its BN shift.
    with torch.no_grad():
        assert (small.model.train()(x) - reference(x)).abs().max() <= 1e-5
    assert small.params_trained == sum(p.numel() for p in small.model.parameters()) < small.params_full
    assert small.report()["selection_sparsity"] == pytest.approx(0.5, abs=0.05)


def test_compact_training_run_exports_the_small_model(tmp_path, write_recipe, tiny_recipe_dict):
    out = tmp_path / "run"
    recipe = write_recipe(channel_recipe(tiny_recipe_dict))
    result = runner.invoke(app, ["run", str(recipe), "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    section = report["train_compact"]
    assert section["params_trained"] < 0.6 * section["params_full"]
    assert report["sparsity"]["reached"] == pytest.approx(section["selection_sparsity"])
    assert section["selection_sparsity"] > 0.4
    for variant in ("dense", "compact"):
        assert report["validation"][variant]["passed"], variant
    proto = onnx.load(str(out / "model.onnx"))
    params = sum(int(torch.tensor(t.dims).prod()) for t in proto.graph.initializer if len(t.dims) > 1)
    assert params < 0.6 * section["params_full"]  # model.onnx is the small trained network
    # `paiexport export` rebuilds the same small architecture from recipe + masks.pt
    again = runner.invoke(app, ["export", str(out), "--formats", "dense", "--out", str(tmp_path / "re")])
    assert again.exit_code == 0, again.output
    re_proto = onnx.load(str(tmp_path / "re" / "model.onnx"))
    assert [tuple(t.dims) for t in re_proto.graph.initializer] == [
        tuple(t.dims) for t in proto.graph.initializer
    ]


def test_train_compact_shrinks_a_hugging_face_model_chosen_at_initialization_and_trains_it():
    pytest.importorskip("transformers", reason=HF_REASON)
    from paiexport.sparsity.masks import prunable_weights

    model = tiny(BERT)
    inputs = tokens(4, 8)
    scores = {n: w.detach().abs() for n, w in prunable_weights(model).items()}
    # Half of every group: 0.35 of all prunable weights (the pooler and classifier stay dense).
    cfg = SparsityConfig(target=0.35, distribution="uniform", structure="channel")
    attach_masks(model, select_structured(scores, model, cfg, inputs["input_ids"]))
    reference = copy.deepcopy(model).eval()
    small = shrink_for_training(model, inputs)  # the example: the model's named inputs
    layers = small.model.bert.encoder.layer
    assert [
        (layer.attention.self.num_attention_heads, layer.intermediate.dense.out_features) for layer in layers
    ] == [
        (2, 32),
        (2, 32),
    ]
    with torch.no_grad():
        want, got = reference(**inputs).logits, small.model.eval()(**inputs).logits
    assert (want - got).abs().max() <= 1e-4
    assert small.params_trained < 0.8 * small.params_full  # the embeddings stay whole
    net = small.model.train()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    before = layers[0].attention.self.query.weight.detach().clone()
    loss = torch.nn.functional.cross_entropy(net(**inputs).logits, torch.tensor([0, 1, 2, 0]))
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss) and not torch.equal(before, layers[0].attention.self.query.weight)
