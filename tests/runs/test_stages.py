"""stages.py: seeded data and model, the recipe checked against the model, masks and training."""

from __future__ import annotations

import copy
import io
import math

import pytest
import torch
from rich.console import Console
from tiny import TINY_RECIPE

from paiexport.errors import UserError
from paiexport.paths import RunPaths
from paiexport.recipe import Recipe, validate_recipe
from paiexport.runs.stages import (
    Timer,
    build,
    check_fits_model,
    effective_sparsity,
    fit_threads,
    select_and_train,
)
from paiexport.sparsity.allocation import layer_keep_counts
from paiexport.sparsity.counts import kept
from paiexport.sparsity.masks import MASK_BUFFER
from paiexport.sparsity.types import Distribution


def tiny(**sections: dict) -> Recipe:
    """The tiny recipe, one epoch, with `sections` updated (e.g. sparsity={"exclude": [...]})."""
    raw = copy.deepcopy(TINY_RECIPE)
    raw["train"]["epochs"] = 1
    for name, fields in sections.items():
        raw[name].update(fields)
    return validate_recipe(raw, "tiny.yaml")


def test_build_is_seeded_by_the_recipe():
    (data, model), (again, same) = build(tiny()), build(tiny())
    assert torch.equal(data.train.x, again.train.x) and torch.equal(data.test.y, again.test.y)
    theirs = same.state_dict()
    assert all(torch.equal(w, theirs[name]) for name, w in model.state_dict().items())
    _, other = build(validate_recipe({**tiny().to_dict(), "seed": 1}, "tiny.yaml"))
    assert not torch.equal(model.state_dict()["fc1.weight"], other.state_dict()["fc1.weight"])


@pytest.mark.parametrize(
    ("sparsity", "message"),
    [
        (
            {"exclude": ["nope*"]},
            "sparsity.exclude: 'nope*' matches no prunable weight (fc1.weight, fc2.weight, out.weight)",
        ),
        ({"exclude": ["*"]}, "sparsity.exclude: leaves no prunable weight for sparsity.target"),
        (
            {"structure": "1:3"},
            "sparsity.structure: 1:3 prunes nothing: no layer's input dimension is a multiple of 3",
        ),
    ],
    ids=["exclude-matches-nothing", "exclude-leaves-nothing", "n-m-prunes-nothing"],
)
def test_what_only_the_model_can_refute_is_one_line_naming_the_field(sparsity, message):
    recipe = tiny(sparsity=sparsity)
    _, model = build(recipe)
    with pytest.raises(UserError) as refused:
        check_fits_model(recipe, model)
    assert str(refused.value) == message


def test_a_dense_run_may_exclude_every_layer():
    recipe = tiny(method={"name": "dense"}, sparsity={"exclude": ["*"]})
    check_fits_model(recipe, build(recipe)[1])  # no target to reach: nothing to refuse
    assert effective_sparsity(recipe).target == 0.0
    assert (
        effective_sparsity(tiny()).target == 0.8
        and effective_sparsity(tiny()).distribution is Distribution.erk
    )


def test_fit_threads_is_the_recipes_setting_or_one_for_a_tiny_model():
    data, model = build(tiny())
    assert fit_threads(tiny(train={"threads": 3}), model, data) == 3
    assert fit_threads(tiny(train={"threads": "auto"}), model, data) == 1  # a few thousand MACs a step


def test_a_timer_stage_records_its_seconds_and_says_it_is_done():
    buffer = io.StringIO()
    timer = Timer(Console(file=buffer, width=200, color_system=None))
    with timer.stage("fit", "training"):
        pass
    assert list(timer.seconds) == ["fit"] and 0 <= timer.seconds["fit"] < 1
    assert buffer.getvalue().strip().splitlines()[-1] == f"✓ training ({timer.seconds['fit']:.1f} s)"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """select_and_train of the tiny recipe (snip, ERK 80%, one epoch) into a fresh folder."""
    paths = RunPaths(tmp_path_factory.mktemp("stages") / "run")
    timer = Timer(Console(file=io.StringIO()))
    model, data, fit, _method = select_and_train(tiny(), paths, timer)
    return paths, timer, model, data, fit


def test_the_masks_keep_exactly_the_erk_counts(trained):
    paths, *_ = trained
    masks = torch.load(paths.masks, weights_only=True)
    shapes = {n: tuple(m.shape) for n, m in masks.items()}
    assert shapes == {"fc1.weight": (32, 40), "fc2.weight": (16, 32), "out.weight": (4, 16)}
    kept_per_layer = {n: int(m.sum()) for n, m in masks.items()}
    assert kept_per_layer == layer_keep_counts(shapes, 0.8, Distribution.erk)
    total = sum(math.prod(s) for s in shapes.values())
    assert sum(kept_per_layer.values()) == kept(total, 0.8) == 371  # of 1856 weights


def test_the_saved_model_has_its_masks_baked_in(trained):
    paths, _timer, model, *_ = trained
    state = torch.load(paths.model_state, weights_only=True)
    masks = torch.load(paths.masks, weights_only=True)
    assert list(state) == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "out.weight", "out.bias"]
    assert not any(name.endswith(MASK_BUFFER) for name in model.state_dict())
    for name, mask in masks.items():
        assert torch.equal(state[name] != 0, mask)  # zero exactly where pruned, trained elsewhere
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items()) and not model.training


def test_training_wrote_its_checkpoints_and_threads(trained):
    paths, timer, model, data, fit = trained
    assert paths.best_checkpoint.is_file() and paths.last_checkpoint.is_file()
    assert len(paths.metrics.read_text().splitlines()) >= 1
    assert fit.train.threads == fit_threads(tiny(), model, data) and "fit" in timer.seconds
