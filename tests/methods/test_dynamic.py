"""What SET, RigL and SNFS share (`methods/dynamic`): the drop schedule, the initial mask,
per-layer counts and the update log in real training. Each method's own regrowth is tested
in test_rigl.py, test_set.py and test_snfs.py."""

import math

import pytest
import torch
from dynamic_steps import G, W, constant, linear, train_dynamic
from torch import nn

from paiexport.data import DatasetName, load_data
from paiexport.errors import UserError
from paiexport.methods import make_method
from paiexport.methods.dynamic import DropSchedule, DynamicConfig, drop_fraction_at
from paiexport.methods.rigl import RigLConfig
from paiexport.models import ModelName, build_model
from paiexport.recipe import validate_recipe
from paiexport.sparsity.masks import attach_masks, pop_dense_grads, request_dense_grads


def test_rigl_the_optimizer_never_sees_the_dense_gradient():
    layer = linear(W)
    model = nn.Sequential(layer)
    attach_masks(model, {"0.weight": W != 0})
    request_dense_grads(model)
    (layer.weight * G).sum().backward()
    assert torch.equal(layer.weight.grad, G * (W != 0))
    assert torch.equal(pop_dense_grads(model)["0.weight"], G)
    layer.weight.grad = None
    (layer.weight * G).sum().backward()  # the request lasted one backward only
    assert pop_dense_grads(model) == {}


def test_drop_schedules():
    cfg = DynamicConfig(name="x", update_every=10, drop_fraction=0.4, end_fraction=0.5)
    assert drop_fraction_at(cfg, 0, 100) is None
    assert drop_fraction_at(cfg, 5, 100) is None  # not a multiple of update_every
    assert drop_fraction_at(cfg, 10, 100) == pytest.approx(0.2 * (1 + math.cos(math.pi * 10 / 50)))
    assert drop_fraction_at(cfg, 40, 100) == pytest.approx(0.2 * (1 + math.cos(math.pi * 40 / 50)))
    assert drop_fraction_at(cfg, 50, 100) is None and drop_fraction_at(cfg, 60, 100) is None
    linear_cfg = cfg.model_copy(update={"drop_schedule": DropSchedule.linear})
    assert drop_fraction_at(linear_cfg, 30, 100) == pytest.approx(0.4 * (1 - 30 / 50))
    assert drop_fraction_at(cfg.model_copy(update={"drop_schedule": DropSchedule.constant}), 40, 100) == 0.4


@pytest.mark.parametrize("name", ["rigl", "set"])
def test_per_layer_sparsity_unchanged_after_many_updates(tmp_path, name):
    config = constant(name, update_every=2, drop_fraction=0.3)
    details, initial, probe, _ = train_dynamic(tmp_path, config)
    counts = {n: int(m.sum()) for n, m in initial.items()}
    assert all(c == counts for c in probe.counts)
    summary = details["mask_updates"]
    assert summary["count"] == (len(probe.counts) - 1) // 2 >= 10  # steps 2, 4, ... before the end
    assert summary["regrown"] == summary["dropped"] > 0
    final = probe.masks[-1]
    assert any(not torch.equal(final[n], initial[n]) for n in initial)  # the masks did move


def test_no_update_after_end_fraction(tmp_path):
    config = RigLConfig(update_every=3, drop_fraction=0.3, end_fraction=0.5)
    details, _, probe, _ = train_dynamic(tmp_path, config, epochs=4)
    total = len(probe.masks)
    steps = [u["step"] for u in details["mask_updates"]["updates"]]
    assert steps == list(range(3, math.ceil(total / 2), 3))
    last = steps[-1]
    assert all(torch.equal(m[n], probe.masks[last - 1][n]) for m in probe.masks[last:] for n in m)
    logged = [line for line in (tmp_path / "m.jsonl").read_text().splitlines() if "mask_update" in line]
    assert len(logged) == len(steps)


def test_initial_mask_from_any_static_criterion(tmp_path):
    from paiexport.methods import SelectionContext
    from paiexport.methods.snip import SnipConfig
    from paiexport.sparsity.types import SparsityConfig

    data = load_data(DatasetName.synthetic, seed=0, val_fraction=0.2)

    def ctx():
        torch.manual_seed(0)
        model = build_model(ModelName.mlp, {"hidden": [16]}, data.input_shape, data.num_classes)
        return SelectionContext(model, data, SparsityConfig(target=0.7, distribution="uniform"), 32)

    rigl = make_method(RigLConfig(init="snip")).select(ctx())
    snip = make_method(SnipConfig()).select(ctx())
    assert all(torch.equal(rigl[n], snip[n]) for n in snip)


def test_bad_init_names_the_field(tiny_recipe_dict):
    tiny_recipe_dict["method"] = {"name": "rigl", "init": "rigl"}
    with pytest.raises(UserError, match=r"recipe.yaml: method.init: unknown static criterion 'rigl'"):
        validate_recipe(tiny_recipe_dict, "recipe.yaml")
    tiny_recipe_dict["method"] = {"name": "set", "drop_fraction": 1.5}
    with pytest.raises(UserError, match=r"method.drop_fraction"):
        validate_recipe(tiny_recipe_dict, "recipe.yaml")


def test_bundled_rigl90_runs_and_reports_mask_updates(tmp_path):
    """The README's main recipe, shortened: updates happen, per-layer ERK sparsity is exact."""
    import json

    from paiexport.cli.overrides import parse_overrides
    from paiexport.recipe import bundled_recipes_dir, load_recipe
    from paiexport.runs.pipeline import run_recipe

    recipe = load_recipe(
        bundled_recipes_dir() / "rigl90.yaml",
        parse_overrides(["train.epochs=2", "method.update_every=10", "bench.iterations=5"]),
    )
    report = run_recipe(recipe, tmp_path / "run")
    updates = report.method_details["mask_updates"]
    assert updates["count"] >= 3 and updates["dropped"] == updates["regrown"] > 0
    assert updates["schedule"]["update_every"] == 10
    assert json.loads((tmp_path / "run" / "report.json").read_text())["mask_updates"] == updates
    logged = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged if r.get("event") == "mask_update"] == [
        u["step"] for u in updates["updates"]
    ]
    masks = torch.load(tmp_path / "run" / "masks.pt")
    for name, layer in report.sparsity.per_layer.items():
        assert 1 - int(masks[name].sum()) / masks[name].numel() == pytest.approx(layer.target), name
        assert layer.reached == pytest.approx(layer.target, abs=1e-3), name
    assert report.weights_trained is True
    assert "mask updates" in (tmp_path / "run" / "report.md").read_text()
