"""Sparse selection (edge-popup, supermask): scores train, weights never do."""

import math

import pytest
import torch
from tiny import train_briefly

from paiexport.data import DatasetName, load_data
from paiexport.errors import UserError
from paiexport.methods import SelectionContext, make_method
from paiexport.methods.edge_popup import EdgePopupConfig
from paiexport.methods.supermask import SupermaskConfig
from paiexport.models import ModelName, build_model
from paiexport.sparsity.masks import get_masks, prunable_weights
from paiexport.sparsity.types import SparsityConfig
from paiexport.training.config import OptimizerConfig, TrainConfig


def fit(tmp_path, config, target=0.5, distribution="uniform"):
    torch.manual_seed(0)
    data = load_data(DatasetName.synthetic, seed=0, val_fraction=0.2)
    model = build_model(ModelName.mlp, {"hidden": [32, 16]}, data.input_shape, data.num_classes)
    ctx = SelectionContext(model, data, SparsityConfig(target=target, distribution=distribution), 32)
    seen = {}

    def trainer(model, callbacks, *, epochs=None, tag=""):
        seen["before"] = {n: p.detach().clone() for n, p in model.named_parameters()}
        cfg = TrainConfig(epochs=3, optimizer=OptimizerConfig(lr=0.1, weight_decay=5e-4))
        result = train_briefly(model, data, cfg, tmp_path, callbacks)
        seen["after"] = {n: p.detach().clone() for n, p in model.named_parameters()}
        return result

    method = make_method(config)
    result = method.fit(ctx, trainer)
    return method, model, seen, result


@pytest.mark.parametrize("config", [EdgePopupConfig(), SupermaskConfig(weight_init="kaiming")])
def test_weights_bit_identical_while_scores_change(tmp_path, config):
    method, model, seen, result = fit(tmp_path, config)
    before, after = seen["before"], seen["after"]
    scores = [n for n in before if n.endswith(".scores")]
    weights = [n for n in before if not n.endswith(".scores")]
    assert len(scores) == 3 and len(weights) == 6  # fc1, fc2, out: weight + bias each
    for name in weights:
        assert torch.equal(before[name], after[name]), name
    for name in scores:
        assert not torch.equal(before[name], after[name]), f"{name} did not train"
    assert result.train.history[-1].val_metric > 0.35  # selection alone beats chance (4 classes: 0.25)
    # Afterwards: plain modules, mask attached, exported weights = frozen init × mask.
    masks = get_masks(model)
    for name, w in prunable_weights(model).items():
        original = before[name.replace(".weight", ".parametrizations.weight.original")]
        assert torch.equal(w.detach(), original * masks[name])
        assert int(masks[name].sum()) == round(0.5 * w.numel())
    assert all(p.requires_grad for p in model.parameters())
    assert method.trains_weights is False
    assert result.details["sparse_selection"]["keep_per_layer"] == {n: int(m.sum()) for n, m in masks.items()}


def test_signed_constant_init(tmp_path):
    _, _, seen, _ = fit(tmp_path, EdgePopupConfig(), target=0.8, distribution="erk")
    for name in ("fc1", "fc2", "out"):
        w = seen["before"][f"{name}.parametrizations.weight.original"]
        assert torch.allclose(w.abs(), torch.full_like(w, math.sqrt(2.0 / w.shape[1])))
        assert (w > 0).any() and (w < 0).any()


def test_global_distribution_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match=r"sparsity\.distribution"):
        fit(tmp_path, EdgePopupConfig(), distribution="global")


def test_edgepopup50_report_says_weights_not_trained(tmp_path):
    from paiexport.cli.overrides import parse_overrides
    from paiexport.recipe import bundled_recipes_dir, load_recipe
    from paiexport.runs.pipeline import run_recipe

    recipe = load_recipe(
        bundled_recipes_dir() / "edgepopup50.yaml", parse_overrides(["train.epochs=1", "bench.iterations=5"])
    )
    report = run_recipe(recipe, tmp_path / "run")
    assert report.weights_trained is False
    assert any("weights were not trained" in note for note in report.notes)
    assert "**not trained**" in (tmp_path / "run" / "report.md").read_text()
    assert report.validation["sparse"].passed and report.validation["dense"].passed
    for name, layer in report.sparsity.per_layer.items():
        assert layer.reached == pytest.approx(0.5, abs=1e-3), name


def test_supermask_recomputes_batchnorm_statistics_under_the_exported_mask(tmp_path):
    torch.manual_seed(0)
    data = load_data(DatasetName.synthetic, seed=0, val_fraction=0.2)
    model = build_model(ModelName.cnn1d, {"channels": [4, 8], "hidden": 16}, data.input_shape, 4)
    ctx = SelectionContext(model, data, SparsityConfig(target=0.5, distribution="uniform"), 32)

    def trainer(model, callbacks, *, epochs=None, tag=""):
        cfg = TrainConfig(epochs=1, optimizer=OptimizerConfig(lr=0.1))
        return train_briefly(model, data, cfg, tmp_path, callbacks)

    make_method(SupermaskConfig()).fit(ctx, trainer)
    # The first BN sees conv1's output directly: its running mean must be the average of the
    # batch means of that output over the training set, computed with the exported (masked) conv1.
    with torch.no_grad():
        means = [model.conv1(x).mean(dim=(0, 2)) for x, _ in data.train.batches(32)]
    expected = torch.stack(means).mean(0)
    assert torch.allclose(model.bn1.running_mean, expected, atol=1e-5)


def test_a_layer_left_empty_is_refused_before_training():
    from paiexport.data import DatasetName, load_data
    from paiexport.errors import UserError
    from paiexport.methods import METHODS, SelectionContext, make_method
    from paiexport.models import ModelName, build_model
    from paiexport.sparsity.types import SparsityConfig

    data = load_data(DatasetName.synthetic, seed=0, val_fraction=0.2)
    model = build_model(ModelName.mlp, {"hidden": [1]}, data.input_shape, data.num_classes)  # out: 4 weights
    ctx = SelectionContext(model, data, SparsityConfig(target=0.9, distribution="uniform"), 32)
    method = make_method(METHODS["edge_popup"].config_class(name="edge_popup"))

    def never_called(*_args, **_kwargs):
        raise AssertionError("trained although a layer would be empty")

    with pytest.raises(UserError, match=r"sparsity\.allow_layer_collapse"):
        method.fit(ctx, never_called)
