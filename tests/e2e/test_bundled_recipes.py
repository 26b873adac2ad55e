"""Every bundled sparse recipe reaches its target on MNIST-1D (shortened to one epoch)."""

import pytest

from paiexport.cli.overrides import parse_overrides
from paiexport.paths import RunPaths
from paiexport.recipe import (
    apply_overrides,
    bundled_recipes_dir,
    load_recipe,
    read_recipe_file,
    validate_recipe,
)
from paiexport.reporting.assemble import planned_layer_sparsity
from paiexport.runs.stages import prepare, recipe_trainer
from paiexport.sparsity.masks import layer_sparsity, overall_sparsity, prunable_weights
from paiexport.sparsity.types import Distribution, StructureKind

SHORT = {"magnitude_after_training": ["method.finetune_epochs=1"]}
SPARSE = sorted(p.stem for p in bundled_recipes_dir().glob("*.yaml") if load_recipe(p).effective_target() > 0)


@pytest.mark.parametrize("name", SPARSE)
def test_bundled_recipe_reaches_its_target(name, tmp_path):
    path = bundled_recipes_dir() / f"{name}.yaml"
    raw = read_recipe_file(path)
    overrides = ["train.epochs=1", *SHORT.get(raw["method"]["name"], [])]
    recipe = validate_recipe(apply_overrides(raw, parse_overrides(overrides)), str(path))
    data, model, method, ctx = prepare(recipe)
    method.fit(ctx, recipe_trainer(recipe, data, RunPaths(tmp_path)))
    exclude = recipe.sparsity.exclude
    target = recipe.sparsity.target
    assert abs(overall_sparsity(model, exclude) - target) <= 0.005
    per_layer_targets = recipe.sparsity.structure is StructureKind.unstructured
    if per_layer_targets and recipe.sparsity.distribution is not Distribution.global_:
        planned = planned_layer_sparsity(prunable_weights(model, exclude), recipe.sparsity)
        for layer, reached in layer_sparsity(model, exclude).items():
            assert abs(reached - planned[layer]) <= 0.01, layer
