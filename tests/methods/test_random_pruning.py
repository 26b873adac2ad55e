"""Random pruning: seeded, exact counts, independent of the initial weights."""

import pytest
import torch
from selection_context import context
from torch import nn

from paiexport.methods import make_method
from paiexport.methods.random_pruning import RandomConfig


def test_random_is_seeded_and_exact():
    net = nn.Sequential(nn.Linear(20, 10), nn.Linear(10, 5))
    ctx = lambda: context(net, torch.zeros(1, 20), torch.zeros(1).long(), target=0.9)  # noqa: E731
    a, b = make_method(RandomConfig()).select(ctx()), make_method(RandomConfig()).select(ctx())
    for name in a:
        assert torch.equal(a[name], b[name])
    assert int(a["0.weight"].sum()) == 20 and int(a["1.weight"].sum()) == 5


def test_random_masks_are_independent_of_the_initial_weights():
    """The selection stream must not replay the initialization's uniforms (seeding.stream)."""
    from pathlib import Path

    from paiexport.cli.overrides import parse_overrides
    from paiexport.recipe import bundled_recipes_dir, load_recipe
    from paiexport.runs.stages import prepare

    path = Path(bundled_recipes_dir() / "random90.yaml")
    recipe = load_recipe(path, parse_overrides(["sparsity.target=0.5", "data.name=synthetic"]))
    _, _, method, ctx = prepare(recipe)
    masks = method.select(ctx)
    for name in ("conv2.weight", "fc1.weight"):
        w, keep = ctx.prunable()[name].detach(), masks[name]
        kept = w[keep]
        assert 0.47 < float((kept > 0).float().mean()) < 0.53, name
        assert float(kept.abs().mean()) == pytest.approx(float(w.abs().mean()), rel=0.05), name
